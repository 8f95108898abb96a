// Symbol visibility: the library builds with -fvisibility=hidden, and only the entry points a
// real driver exports are made visible, so the dynamic symbol table matches the real one.
#pragma once

#define MOCK_API extern "C" __attribute__((visibility("default")))
