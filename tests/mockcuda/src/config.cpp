#include "config.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace mockcuda {

namespace {

struct Suffix {
    const char* text;
    uint64_t factor;
};

// Kubernetes-style quantities, the notation the rest of the project uses for memory.
constexpr Suffix kSuffixes[] = {
    {"", 1ULL},          {"Ki", 1ULL << 10}, {"Mi", 1ULL << 20}, {"Gi", 1ULL << 30},
    {"Ti", 1ULL << 40},  {"K", 1000ULL},     {"M", 1000000ULL},  {"G", 1000000000ULL},
    {"T", 1000000000000ULL},
};

std::string default_state_path() {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
    return dir + "/mockcuda-" + std::to_string(getuid()) + ".state";
}

// CUDA_VISIBLE_DEVICES as the driver reads it: physical indices separated by commas, the list
// cut at the first entry that names no further device (malformed, out of range or repeated).
// Unset: every device, in physical order.
std::vector<int> visible_devices(const char* text, int devices) {
    std::vector<int> visible;
    if (text == nullptr) {
        for (int index = 0; index < devices; ++index) {
            visible.push_back(index);
        }
        return visible;
    }
    const char* entry = text;
    while (*entry != '\0') {
        char* end = nullptr;
        const long index = std::strtol(entry, &end, 10);
        if (end == entry || (*end != ',' && *end != '\0') || index < 0 || index >= devices ||
            std::find(visible.begin(), visible.end(), index) != visible.end()) {
            break;
        }
        visible.push_back(static_cast<int>(index));
        entry = *end == ',' ? end + 1 : end;
    }
    return visible;
}

// A whole number from `low` to `high`; false when malformed or out of range.
bool parse_integer(const char* text, long long low, long long high, long long& value) {
    if (*text == '\0') {
        return false;
    }
    errno = 0;
    char* end = nullptr;
    value = std::strtoll(text, &end, 10);
    return errno == 0 && *end == '\0' && value >= low && value <= high;
}

bool parse_driver_version(const char* text, int& version) {
    long long value = 0;
    if (!parse_integer(text, 2000, 99990, value)) {
        return false;
    }
    version = static_cast<int>(value);
    return true;
}

// The numeric variables: each sets one field and says what it accepts when malformed.
bool load_numbers(Config& config, std::string& error) {
    long long value = 0;
    if (const char* gbps = std::getenv("MOCKCUDA_COPY_GBPS")) {
        char* end = nullptr;
        config.copy_gbps = std::strtod(gbps, &end);
        if (end == gbps || *end != '\0' || !std::isfinite(config.copy_gbps) ||
            config.copy_gbps <= 0) {
            error = std::string("MOCKCUDA_COPY_GBPS must be a positive number of GB/s, got '") +
                    gbps + "'";
            return false;
        }
    }
    if (const char* latency = std::getenv("MOCKCUDA_COPY_LATENCY_NS")) {
        if (!parse_integer(latency, 0, INT64_MAX / 2, value)) {
            error = std::string("MOCKCUDA_COPY_LATENCY_NS must be a whole number of ns, got '") +
                    latency + "'";
            return false;
        }
        config.copy_latency_ns = value;
    }
    if (const char* version = std::getenv("MOCKCUDA_DRIVER_VERSION")) {
        int parsed = 0;
        if (!parse_driver_version(version, parsed)) {
            error = std::string("MOCKCUDA_DRIVER_VERSION must be a CUDA version such as 12080, "
                                "got '") + version + "'";
            return false;
        }
    }
    if (const char* after = std::getenv("MOCKCUDA_FAIL_MEMCREATE_AFTER")) {
        if (!parse_integer(after, 0, INT64_MAX, value)) {
            error = std::string("MOCKCUDA_FAIL_MEMCREATE_AFTER must be a whole number of calls, "
                                "got '") + after + "'";
            return false;
        }
        config.fail_memcreate_after = value;
    }
    return true;
}

}  // namespace

int driver_version() {
    static const int version = [] {
        int parsed = kDefaultDriverVersion;
        if (const char* text = std::getenv("MOCKCUDA_DRIVER_VERSION")) {
            parse_driver_version(text, parsed);  // leaves the default when malformed
        }
        return parsed;
    }();
    return version;
}

bool parse_bytes(const char* text, uint64_t& bytes) {
    if (text == nullptr || *text < '0' || *text > '9') {
        return false;
    }
    errno = 0;
    char* end = nullptr;
    unsigned long long value = std::strtoull(text, &end, 10);
    if (errno != 0 || value == 0) {
        return false;
    }
    for (const Suffix& suffix : kSuffixes) {
        if (std::strcmp(end, suffix.text) == 0) {
            if (value > UINT64_MAX / suffix.factor) {
                return false;
            }
            bytes = value * suffix.factor;
            return true;
        }
    }
    return false;
}

bool load_config(Config& config, std::string& error) {
    config = Config{};
    if (const char* devices = std::getenv("MOCKCUDA_DEVICES")) {
        char* end = nullptr;
        long value = std::strtol(devices, &end, 10);
        if (*devices == '\0' || *end != '\0' || value < 0 || value > kMaxDevices) {
            error = "MOCKCUDA_DEVICES must be an integer from 0 to " +
                    std::to_string(kMaxDevices) + ", got '" + devices + "'";
            return false;
        }
        config.devices = static_cast<int>(value);
    }
    if (const char* memory = std::getenv("MOCKCUDA_MEMORY")) {
        if (!parse_bytes(memory, config.memory)) {
            error = std::string("MOCKCUDA_MEMORY must be a positive byte count such as "
                                "17179869184 or 16Gi, got '") + memory + "'";
            return false;
        }
    }
    if (const char* name = std::getenv("MOCKCUDA_NAME"); name != nullptr && *name != '\0') {
        config.name = name;
    }
    if (!load_numbers(config, error)) {
        return false;
    }
    config.visible = visible_devices(std::getenv("CUDA_VISIBLE_DEVICES"), config.devices);
    const char* state = std::getenv("MOCKCUDA_STATE");
    config.state_path = (state != nullptr && *state != '\0') ? state : default_state_path();
    return true;
}

}  // namespace mockcuda
