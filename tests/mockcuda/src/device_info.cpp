#include "device_info.h"

#include <cstdio>

namespace mockcuda {

std::array<unsigned char, 16> device_uuid(int device) {
    // A fixed prefix plus the ordinal: stable across runs, distinct per device.
    std::array<unsigned char, 16> uuid = {'m', 'o', 'c', 'k', 'c', 'u', 'd', 'a',
                                          0,   0,   0,   0,   0,   0,   0,   0};
    uuid[15] = static_cast<unsigned char>(device);
    return uuid;
}

std::string device_uuid_string(int device) {
    const std::array<unsigned char, 16> b = device_uuid(device);
    char text[64];
    std::snprintf(text, sizeof text,
                  "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                  b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                  b[12], b[13], b[14], b[15]);
    return text;
}

}  // namespace mockcuda
