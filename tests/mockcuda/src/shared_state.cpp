#include "shared_state.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "config.h"

namespace mockcuda {

namespace {

constexpr uint64_t kMagic = 0x4d4f434b43554441ULL;  // "MOCKCUDA"
constexpr uint32_t kVersion = 2;  // 2: 256 process slots
constexpr int kMaxProcesses = 256;  // room for the 200-process tests
constexpr int kIntervals = 2048;  // merged busy intervals kept per device

struct Interval {
    int64_t start;
    int64_t end;
};

struct Timeline {
    int64_t busy_until;
    uint32_t last;  // index of the newest interval
    uint32_t pad;
    Interval intervals[kIntervals];
};

struct Slot {
    int32_t pid;  // 0: free
    uint32_t pad;
    uint64_t used[kMaxDevices];
};

// Guards against a pid that was reused: a slot only counts while its process is alive.
bool alive(int32_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH); }

}  // namespace

struct SharedLayout {
    uint64_t magic;
    uint32_t version;
    uint32_t size;
    pthread_mutex_t mutex;  // robust and process-shared: a killed holder does not wedge others
    Slot slots[kMaxProcesses];
    Timeline timelines[kMaxDevices];
};

namespace {

class Lock {
public:
    explicit Lock(SharedLayout* layout) : mutex_(&layout->mutex) {
        if (pthread_mutex_lock(mutex_) == EOWNERDEAD) {
            pthread_mutex_consistent(mutex_);
        }
    }
    ~Lock() { pthread_mutex_unlock(mutex_); }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;

private:
    pthread_mutex_t* mutex_;
};

void format(SharedLayout* layout) {
    std::memset(layout, 0, sizeof(SharedLayout));
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&layout->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    layout->version = kVersion;
    layout->size = sizeof(SharedLayout);
    __atomic_store_n(&layout->magic, kMagic, __ATOMIC_RELEASE);
}

bool valid(const SharedLayout* layout) {
    return __atomic_load_n(&layout->magic, __ATOMIC_ACQUIRE) == kMagic &&
           layout->version == kVersion && layout->size == sizeof(SharedLayout);
}

// Picks this process's slot: a free one, or one whose process is gone.
int claim_slot(SharedLayout* layout) {
    Lock lock(layout);
    for (int i = 0; i < kMaxProcesses; ++i) {
        Slot& slot = layout->slots[i];
        if (slot.pid == 0 || !alive(slot.pid)) {
            std::memset(&slot, 0, sizeof(Slot));
            slot.pid = getpid();
            return i;
        }
    }
    return -1;
}

}  // namespace

int64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void sleep_until_ns(int64_t when) {
    timespec ts{};
    ts.tv_sec = when / 1000000000LL;
    ts.tv_nsec = when % 1000000000LL;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}

std::unique_ptr<SharedState> SharedState::open(const std::string& path, bool charges,
                                               std::vector<int> devices, std::string& error) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        error = "MOCKCUDA_STATE: cannot open '" + path + "': " + std::strerror(errno);
        return nullptr;
    }
    // The file lock serialises first-time formatting between processes starting together.
    flock(fd, LOCK_EX);
    struct stat st{};
    bool fresh = fstat(fd, &st) == 0 && st.st_size != static_cast<off_t>(sizeof(SharedLayout));
    if (fresh && ftruncate(fd, sizeof(SharedLayout)) != 0) {
        error = "MOCKCUDA_STATE: cannot size '" + path + "': " + std::strerror(errno);
        flock(fd, LOCK_UN);
        close(fd);
        return nullptr;
    }
    void* map = mmap(nullptr, sizeof(SharedLayout), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        error = "MOCKCUDA_STATE: cannot map '" + path + "': " + std::strerror(errno);
        flock(fd, LOCK_UN);
        close(fd);
        return nullptr;
    }
    auto* layout = static_cast<SharedLayout*>(map);
    if (fresh || !valid(layout)) {
        format(layout);
    }
    flock(fd, LOCK_UN);
    close(fd);
    int slot = charges ? claim_slot(layout) : -1;
    if (charges && slot < 0) {
        error = "MOCKCUDA_STATE: more than " + std::to_string(kMaxProcesses) +
                " processes share '" + path + "'";
        munmap(layout, sizeof(SharedLayout));
        return nullptr;
    }
    return std::unique_ptr<SharedState>(new SharedState(layout, slot, std::move(devices)));
}

SharedState::~SharedState() { munmap(layout_, sizeof(SharedLayout)); }

uint64_t SharedState::used(int device) {
    Lock lock(layout_);
    uint64_t total = 0;
    for (const Slot& slot : layout_->slots) {
        if (slot.pid != 0 && alive(slot.pid)) {
            total += slot.used[physical(device)];
        }
    }
    return total;
}

bool SharedState::charge(int device, uint64_t bytes, uint64_t total) {
    Lock lock(layout_);
    uint64_t in_use = 0;
    for (const Slot& slot : layout_->slots) {
        if (slot.pid != 0 && alive(slot.pid)) {
            in_use += slot.used[physical(device)];
        }
    }
    if (in_use > total || bytes > total - in_use) {
        return false;
    }
    layout_->slots[slot_].used[physical(device)] += bytes;
    return true;
}

void SharedState::uncharge(int device, uint64_t bytes) {
    Lock lock(layout_);
    uint64_t& used = layout_->slots[slot_].used[physical(device)];
    used -= std::min(used, bytes);
}

int64_t SharedState::enqueue(int device, int64_t now, int64_t duration_ns) {
    Lock lock(layout_);
    Timeline& timeline = layout_->timelines[physical(device)];
    const int64_t start = std::max(now, timeline.busy_until);
    const int64_t end = start + std::max<int64_t>(duration_ns, 0);
    if (end > start) {
        Interval& newest = timeline.intervals[timeline.last];
        if (newest.end == start && newest.end != 0) {
            newest.end = end;  // back-to-back work merges, so the ring spans a long time
        } else {
            timeline.last = (timeline.last + 1) % kIntervals;
            timeline.intervals[timeline.last] = Interval{start, end};
        }
        timeline.busy_until = end;
    }
    return end;
}

double SharedState::utilization(int device, int64_t window_ns) {
    const int64_t now = now_ns();
    const int64_t from = now - window_ns;
    Lock lock(layout_);
    int64_t busy = 0;
    for (const Interval& interval : layout_->timelines[physical(device)].intervals) {
        const int64_t start = std::max(interval.start, from);
        const int64_t end = std::min(interval.end, now);
        busy += std::max<int64_t>(end - start, 0);
    }
    return static_cast<double>(busy) / static_cast<double>(window_ns);
}

void SharedState::release() {
    if (slot_ < 0) {
        return;
    }
    Lock lock(layout_);
    std::memset(&layout_->slots[slot_], 0, sizeof(Slot));
}

}  // namespace mockcuda
