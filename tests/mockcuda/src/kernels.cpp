#include "kernels.h"

#include <cstring>

namespace mockcuda {

namespace {

// A little-endian parameter value at `offset`.
template <typename T>
T arg(const unsigned char* args, size_t offset) {
    T value;
    std::memcpy(&value, args + offset, sizeof value);
    return value;
}

unsigned char* bytes_at(uint64_t address) { return reinterpret_cast<unsigned char*>(address); }

// CRC-32 with the reflected polynomial 0xEDB88320, as zlib computes it.
uint32_t crc32(const unsigned char* data, uint64_t size) {
    uint32_t crc = 0xFFFFFFFFu;
    for (uint64_t i = 0; i < size; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

// mock_fill(u8* dst, u64 bytes, u32 value)
bool fill(const unsigned char* args, const RangeCheck& check) {
    const auto dst = arg<uint64_t>(args, 0);
    const auto size = arg<uint64_t>(args, 8);
    if (!check(dst, size)) {
        return false;
    }
    std::memset(bytes_at(dst), static_cast<unsigned char>(arg<uint32_t>(args, 16)), size);
    return true;
}

// mock_checksum(const u8* src, u64 bytes, u64* out)
bool checksum(const unsigned char* args, const RangeCheck& check) {
    const auto src = arg<uint64_t>(args, 0);
    const auto size = arg<uint64_t>(args, 8);
    const auto out = arg<uint64_t>(args, 16);
    if (!check(src, size) || !check(out, sizeof(uint64_t))) {
        return false;
    }
    const uint64_t result = crc32(bytes_at(src), size);
    std::memcpy(bytes_at(out), &result, sizeof result);
    return true;
}

// mock_add(u8* dst, const u8* a, const u8* b, u64 bytes)
bool add(const unsigned char* args, const RangeCheck& check) {
    const auto dst = arg<uint64_t>(args, 0);
    const auto a = arg<uint64_t>(args, 8);
    const auto b = arg<uint64_t>(args, 16);
    const auto size = arg<uint64_t>(args, 24);
    if (!check(a, size) || !check(b, size) || !check(dst, size)) {
        return false;
    }
    for (uint64_t i = 0; i < size; ++i) {
        bytes_at(dst)[i] = static_cast<unsigned char>(bytes_at(a)[i] + bytes_at(b)[i]);
    }
    return true;
}

// mock_xor_pair(struct {const u8* a; const u8* b;} pair, u8* dst, u64 bytes)
bool xor_pair(const unsigned char* args, const RangeCheck& check) {
    const auto a = arg<uint64_t>(args, 0);
    const auto b = arg<uint64_t>(args, 8);
    const auto dst = arg<uint64_t>(args, 16);
    const auto size = arg<uint64_t>(args, 24);
    if (!check(a, size) || !check(b, size) || !check(dst, size)) {
        return false;
    }
    for (uint64_t i = 0; i < size; ++i) {
        bytes_at(dst)[i] = bytes_at(a)[i] ^ bytes_at(b)[i];
    }
    return true;
}

const Kernel kKernels[] = {
    {"mock_fill", {{0, 8}, {8, 8}, {16, 4}}, fill},
    {"mock_checksum", {{0, 8}, {8, 8}, {16, 8}}, checksum},
    {"mock_add", {{0, 8}, {8, 8}, {16, 8}, {24, 8}}, add},
    {"mock_xor_pair", {{0, 16}, {16, 8}, {24, 8}}, xor_pair},
};

}  // namespace

const Kernel* find_kernel(const std::string& name) {
    for (const Kernel& kernel : kKernels) {
        if (name == kernel.name) {
            return &kernel;
        }
    }
    return nullptr;
}

}  // namespace mockcuda
