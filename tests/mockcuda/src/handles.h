// Opaque handles given to callers are pointers to objects in one of the process's live sets;
// these are the only ways such a handle is created, resolved and destroyed.
#pragma once

#include <unordered_set>

#include "mockcuda/cuda.h"

namespace mockcuda {

// Registers `object` in `live` and hands it out through `out`.
template <typename T, typename Handle>
CUresult publish(std::unordered_set<T*>& live, T* object, Handle* out) {
    live.insert(object);
    *out = reinterpret_cast<Handle>(object);
    return CUDA_SUCCESS;
}

// The live object behind `handle`, or nullptr for a stale or made-up one.
template <typename T, typename Handle>
T* lookup(const std::unordered_set<T*>& live, Handle handle) {
    auto* object = reinterpret_cast<T*>(handle);
    return live.count(object) == 0 ? nullptr : object;
}

// Forgets and frees the object behind `handle`; `unknown` when it is not live.
template <typename T, typename Handle>
CUresult destroy(std::unordered_set<T*>& live, Handle handle, CUresult unknown) {
    auto* object = reinterpret_cast<T*>(handle);
    if (live.erase(object) == 0) {
        return unknown;
    }
    delete object;
    return CUDA_SUCCESS;
}

}  // namespace mockcuda
