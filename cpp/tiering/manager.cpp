#include <algorithm>
#include <thread>

#include "tf/tiering.h"

namespace tf::tiering {
namespace {

constexpr std::uint64_t kAlignment = 256;      // what cuMemAlloc guarantees its callers
constexpr std::uint32_t kHostBlockChunks = 32;  // host tier grows by up to this many chunks
constexpr std::uint32_t kStagingChunks = 8;     // disk <-> device copies in flight at once

std::uint64_t round_up(std::uint64_t value, std::uint64_t to) { return (value + to - 1) / to * to; }

// The entry of `allocations` (by start address, each with a `size`) holding `address`, or end.
template <typename Map>
auto find_containing(Map& allocations, std::uint64_t address) {
  auto it = allocations.upper_bound(address);
  if (it == allocations.begin()) {
    return allocations.end();
  }
  --it;
  const std::uint64_t extent = std::max<std::uint64_t>(it->second.size, 1);
  return address - it->first < extent ? it : allocations.end();
}

}  // namespace

struct Manager::Segment {
  std::uint64_t base = 0;
  std::uint64_t size = 0;
  bool slab = false;
  std::vector<Chunk> chunks;
  std::uint32_t away = 0;                        // chunks not in VRAM
  std::map<std::uint64_t, std::uint64_t> holes;  // slab: free offset -> length
  std::uint32_t live = 0;                        // allocations in it
  bool pinned = false;                           // never evicted (exported memory in it)
};

const char* outcome_text(Outcome outcome) noexcept {
  switch (outcome) {
    case Outcome::ok:
      return "ok";
    case Outcome::over_limit:
      return "the worker's VRAM limit (all tiers together) is reached";
    case Outcome::no_room:
      return "the allocations needed at once do not fit in the VRAM budget, or the host and "
             "disk tiers are full";
    case Outcome::failed:
      return "the driver or the disk failed while paging";
  }
  return "?";
}

Manager::Manager(Backend& backend, std::uint64_t granularity)
    : backend_(backend), granularity_(granularity) {}

Manager::~Manager() = default;

Outcome Manager::allocate(std::uint64_t size, std::uint64_t& ptr) {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (size <= granularity_ / 4) {
    const Outcome outcome = allocate_in_slab(size, ptr);
    release_spares();
    return outcome;
  }
  Segment* segment = nullptr;
  const Outcome outcome = new_segment(round_up(size, granularity_), false, segment);
  release_spares();
  if (outcome != Outcome::ok) {
    return outcome;
  }
  segment->live = 1;
  ptr = segment->base;
  const auto last = static_cast<std::uint32_t>(segment->chunks.size() - 1);
  allocations_[ptr] = Allocation{size, segment, 0, last, ++clock_};
  live_.fetch_add(1, std::memory_order_relaxed);
  return Outcome::ok;
}

Outcome Manager::allocate_in_slab(std::uint64_t size, std::uint64_t& ptr) {
  const std::uint64_t need = round_up(size, kAlignment);
  Segment* found = nullptr;
  std::uint64_t offset = 0;
  for (const auto& [base, segment] : segments_) {  // first fit
    if (!segment->slab) {
      continue;
    }
    const auto hole = std::find_if(segment->holes.begin(), segment->holes.end(),
                                   [need](const auto& entry) { return entry.second >= need; });
    if (hole != segment->holes.end()) {
      found = segment.get();
      offset = hole->first;
      const std::uint64_t rest = hole->second - need;
      found->holes.erase(hole);
      if (rest > 0) {
        found->holes[offset + need] = rest;
      }
      break;
    }
  }
  if (found == nullptr) {
    if (const Outcome outcome = new_segment(granularity_, true, found); outcome != Outcome::ok) {
      return outcome;
    }
    if (need < granularity_) {
      found->holes[need] = granularity_ - need;
    }
  }
  ++found->live;
  ptr = found->base + offset;
  allocations_[ptr] = Allocation{size, found, 0, 0, ++clock_};
  live_.fetch_add(1, std::memory_order_relaxed);
  return Outcome::ok;
}

Outcome Manager::new_segment(std::uint64_t size, bool slab, Segment*& out) {
  if (const Outcome outcome = make_device_room(size, {}); outcome != Outcome::ok) {
    return outcome;
  }
  if (!backend_.charge(size)) {
    return Outcome::over_limit;
  }
  std::uint64_t base = 0;
  if (!backend_.reserve(size, base)) {
    backend_.credit(size);
    return Outcome::failed;
  }
  auto segment = std::make_unique<Segment>();
  segment->base = base;
  segment->size = size;
  segment->slab = slab;
  segment->chunks.resize(size / granularity_);
  for (std::size_t i = 0; i < segment->chunks.size(); ++i) {
    if (!back(base + i * granularity_, segment->chunks[i].handle)) {
      while (i-- > 0) {
        unback(base + i * granularity_, segment->chunks[i].handle);
      }
      backend_.unreserve(base, size);
      backend_.credit(size);
      return Outcome::no_room;
    }
  }
  stats_.device_bytes += size;
  out = segment.get();
  segments_[base] = std::move(segment);
  return Outcome::ok;
}

bool Manager::release(std::uint64_t ptr) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = allocations_.find(ptr);
  if (it == allocations_.end()) {
    return false;
  }
  Segment& segment = *it->second.segment;
  const std::uint64_t size = round_up(it->second.size, kAlignment);
  allocations_.erase(it);
  live_.fetch_sub(1, std::memory_order_relaxed);
  if (--segment.live == 0) {
    drop_segment(segment);
    release_spares();
  } else {  // a slab: the range becomes a hole, merged with its neighbours
    std::uint64_t offset = ptr - segment.base;
    std::uint64_t length = size;
    auto next = segment.holes.lower_bound(offset);
    if (next != segment.holes.end() && next->first == offset + length) {
      length += next->second;
      next = segment.holes.erase(next);
    }
    if (next != segment.holes.begin()) {
      auto previous = std::prev(next);
      if (previous->first + previous->second == offset) {
        offset = previous->first;
        length += previous->second;
        segment.holes.erase(previous);
      }
    }
    segment.holes[offset] = length;
  }
  return true;
}

void Manager::drop_segment(Segment& segment) {
  backend_.quiesce();  // queued work may still use it, as a free on the driver waits for
  std::uint64_t away = 0;
  for (std::size_t i = 0; i < segment.chunks.size(); ++i) {
    Chunk& chunk = segment.chunks[i];
    if (chunk.tier == Tier::device) {
      unback(segment.base + i * granularity_, chunk.handle);
      stats_.device_bytes -= granularity_;
    } else {
      give_back(chunk);
      ++away;
    }
  }
  chunks_away_ -= away;
  backend_.unreserve(segment.base, segment.size);
  backend_.credit(segment.size);
  const std::uint64_t base = segment.base;
  segments_.erase(base);  // destroys `segment`
  if (away > 0) {
    report(0, 0);
  }
}

bool Manager::back(std::uint64_t at, std::uint64_t& handle) {
  std::uint64_t made = 0;
  if (!spares_.empty()) {
    made = spares_.back();
    spares_.pop_back();
  } else if (!backend_.create(granularity_, made)) {
    return false;
  }
  if (!backend_.map(at, granularity_, made)) {
    spares_.push_back(made);
    return false;
  }
  handle = made;
  return true;
}

void Manager::unback(std::uint64_t at, std::uint64_t handle) {
  backend_.unmap(at, granularity_);
  spares_.push_back(handle);
}

void Manager::release_spares() {
  for (const std::uint64_t handle : spares_) {
    backend_.release(handle);
  }
  spares_.clear();
}

void Manager::give_back(Chunk& chunk) {
  if (chunk.tier == Tier::host) {
    host_free_.push_back(chunk.slot);
    stats_.host_bytes -= granularity_;
  } else if (chunk.tier == Tier::disk) {
    disk_free_.push_back(chunk.slot);
    stats_.disk_bytes -= granularity_;
  }
}

bool Manager::resident(const Allocation& allocation) const {
  const Segment& segment = *allocation.segment;
  return segment.slab ? segment.chunks[0].tier == Tier::device : segment.away == 0;
}

Outcome Manager::use(const std::uint64_t* words, std::size_t count) {
  const std::lock_guard<std::mutex> lock(mutex_);
  Touched touched;
  for (std::size_t i = 0; i < count; ++i) {
    const auto it = find_containing(allocations_, words[i]);
    if (it != allocations_.end() &&
        std::find(touched.begin(), touched.end(), it) == touched.end()) {
      touched.push_back(it);
    }
  }
  if (touched.empty()) {
    return begun(Outcome::ok);
  }
  ++clock_;
  bool all_resident = true;
  for (const auto& it : touched) {
    it->second.last_use = clock_;
    all_resident = all_resident && (chunks_away_ == 0 || resident(it->second));
  }
  return begun(all_resident ? Outcome::ok : make_resident(touched));
}

Outcome Manager::use_all() {
  const std::lock_guard<std::mutex> lock(mutex_);
  if (chunks_away_ == 0) {
    return begun(Outcome::ok);
  }
  Touched touched;
  for (auto it = allocations_.begin(); it != allocations_.end(); ++it) {
    touched.push_back(it);
  }
  return begun(make_resident(touched));
}

Outcome Manager::pin(std::uint64_t address) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = find_containing(allocations_, address);
  if (it == allocations_.end()) {
    return begun(Outcome::ok);
  }
  it->second.segment->pinned = true;  // with every allocation sharing its chunks
  return begun(resident(it->second) ? Outcome::ok : make_resident({it}));
}

Outcome Manager::begun(Outcome outcome) noexcept {
  if (outcome == Outcome::ok) {
    in_flight_.fetch_add(1, std::memory_order_relaxed);
  }
  return outcome;
}

void Manager::done() noexcept { in_flight_.fetch_sub(1, std::memory_order_release); }

Outcome Manager::make_resident(const Touched& touched) {
  const Outcome outcome = page_in(touched);
  release_spares();
  return outcome;
}

Outcome Manager::page_in(const Touched& touched) {
  std::vector<std::pair<Segment*, std::uint32_t>> missing;
  for (const auto& it : touched) {
    Segment* segment = it->second.segment;
    for (std::uint32_t i = it->second.first; i <= it->second.last; ++i) {
      const std::pair<Segment*, std::uint32_t> chunk{segment, i};
      if (segment->chunks[i].tier != Tier::device &&
          std::find(missing.begin(), missing.end(), chunk) == missing.end()) {
        missing.push_back(chunk);
      }
    }
  }
  if (missing.empty()) {
    return Outcome::ok;
  }
  // What comes in leaves its host or disk slot, so what goes out to make room may use that much
  // more of those tiers meanwhile: a worker whose tiers are nearly full can still swap.
  for (const auto& [segment, index] : missing) {
    (segment->chunks[index].tier == Tier::host ? slack_.host : slack_.disk) += granularity_;
  }
  const Outcome room = make_device_room(missing.size() * granularity_, touched);
  slack_ = Slack{};
  if (room != Outcome::ok) {
    return room;
  }
  // Map every missing chunk first, so a refusal leaves each where it was.
  std::vector<std::uint64_t> handles(missing.size());
  for (std::size_t i = 0; i < missing.size(); ++i) {
    const auto& [segment, index] = missing[i];
    if (!back(segment->base + index * granularity_, handles[i])) {
      while (i-- > 0) {
        unback(missing[i].first->base + missing[i].second * granularity_, handles[i]);
      }
      return Outcome::no_room;
    }
  }
  // Host chunks: every copy queued, then one wait. Disk chunks: through the staging buffer,
  // kStagingChunks at a time. Eviction above may have moved host chunks to disk: read the tier
  // only now.
  // On a failure the chunks stay where they were: the new mappings go (after the copies
  // queued so far are done with the slots they read).
  auto undo = [&] {
    backend_.finish();
    for (std::size_t i = 0; i < missing.size(); ++i) {
      unback(missing[i].first->base + missing[i].second * granularity_, handles[i]);
    }
    return Outcome::failed;
  };
  for (std::size_t i = 0; i < missing.size(); ++i) {
    const auto& [segment, index] = missing[i];
    const Chunk& chunk = segment->chunks[index];
    if (chunk.tier == Tier::host &&
        !backend_.copy_in(segment->base + index * granularity_, host_slot(chunk.slot),
                          granularity_)) {
      return undo();
    }
  }
  std::uint32_t staged = 0;
  for (std::size_t i = 0; i < missing.size(); ++i) {
    const auto& [segment, index] = missing[i];
    const Chunk& chunk = segment->chunks[index];
    if (chunk.tier != Tier::disk) {
      continue;
    }
    if (staged == kStagingChunks) {
      if (!backend_.finish()) {
        return undo();
      }
      staged = 0;
    }
    char* buffer = static_cast<char*>(staging_) + staged * granularity_;
    if (!backend_.read_disk(std::uint64_t{chunk.slot} * granularity_, buffer, granularity_) ||
        !backend_.copy_in(segment->base + index * granularity_, buffer, granularity_)) {
      return undo();
    }
    ++staged;
  }
  if (!backend_.finish()) {
    return undo();
  }
  for (std::size_t i = 0; i < missing.size(); ++i) {
    const auto& [segment, index] = missing[i];
    Chunk& chunk = segment->chunks[index];
    give_back(chunk);
    chunk = Chunk{Tier::device, handles[i], 0};
    --segment->away;
  }
  chunks_away_ -= missing.size();
  stats_.device_bytes += missing.size() * granularity_;
  report(0, missing.size());
  return Outcome::ok;
}

Outcome Manager::make_device_room(std::uint64_t bytes, const Touched& keep) {
  if (backend_.room(Tier::device) >= bytes) {
    return Outcome::ok;
  }
  // Calls that made their memory resident and have not yet queued their work finish first
  // (they take no lock to do so; none can begin while this holds the lock), then the work
  // queued so far.
  while (in_flight_.load(std::memory_order_acquire) != 0) {
    std::this_thread::yield();
  }
  if (!backend_.quiesce()) {
    return Outcome::failed;
  }
  while (backend_.room(Tier::device) < bytes) {
    const auto victim = least_recent(Tier::device, keep);
    if (victim == allocations_.end()) {
      return Outcome::no_room;
    }
    if (const Outcome outcome = evict(victim->second); outcome != Outcome::ok) {
      return outcome;
    }
  }
  return Outcome::ok;
}

Manager::Allocations::iterator Manager::least_recent(Tier tier, const Touched& keep) {
  auto best = allocations_.end();
  for (auto it = allocations_.begin(); it != allocations_.end(); ++it) {
    const Allocation& candidate = it->second;
    if (candidate.segment->pinned || (best != allocations_.end() &&
                             candidate.last_use >= best->second.last_use)) {
      continue;
    }
    // A slab chunk moves with every allocation in it: none of them may be one in use.
    const bool kept = std::any_of(keep.begin(), keep.end(), [&](const auto& used) {
      return used->second.segment == candidate.segment;
    });
    const std::vector<Chunk>& chunks = candidate.segment->chunks;
    const bool holds = std::any_of(chunks.begin() + candidate.first,
                                   chunks.begin() + candidate.last + 1,
                                   [tier](const Chunk& chunk) { return chunk.tier == tier; });
    if (!kept && holds) {
      best = it;
    }
  }
  return best;
}

Outcome Manager::evict(Allocation& victim) {
  Segment& segment = *victim.segment;
  std::vector<std::uint32_t> out;
  for (std::uint32_t i = victim.first; i <= victim.last; ++i) {
    if (segment.chunks[i].tier == Tier::device) {
      out.push_back(i);
    }
  }
  // As many chunks as the host tier takes, copied together; the rest one by one to disk.
  std::vector<std::uint32_t> slots;
  while (slots.size() < out.size()) {
    std::uint32_t slot = 0;
    if (!take_host_slot(slot, slots.size() * granularity_)) {
      break;
    }
    slots.push_back(slot);
  }
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (!backend_.copy_out(host_slot(slots[i]), segment.base + out[i] * granularity_,
                           granularity_)) {
      host_free_.insert(host_free_.end(), slots.begin(), slots.end());
      return Outcome::failed;
    }
  }
  if (!backend_.finish()) {
    host_free_.insert(host_free_.end(), slots.begin(), slots.end());
    return Outcome::failed;
  }
  std::uint64_t moved = 0;
  auto settle = [&](std::uint32_t index, Tier tier, std::uint32_t slot) {
    Chunk& chunk = segment.chunks[index];
    unback(segment.base + index * granularity_, chunk.handle);
    chunk = Chunk{tier, 0, slot};
    ++segment.away;
    ++chunks_away_;
    ++moved;
    stats_.device_bytes -= granularity_;
    (tier == Tier::host ? stats_.host_bytes : stats_.disk_bytes) += granularity_;
    report(0, 0);  // the tiers' room is read from what was reported
  };
  for (std::size_t i = 0; i < slots.size(); ++i) {
    settle(out[i], Tier::host, slots[i]);
  }
  Outcome outcome = Outcome::ok;
  for (std::size_t i = slots.size(); i < out.size(); ++i) {
    const std::uint64_t address = segment.base + out[i] * granularity_;
    std::uint32_t slot = 0;
    if (!take_disk_slot(slot)) {
      outcome = Outcome::no_room;
      break;
    }
    // A failed write (disk full) keeps the chunk in VRAM: nothing is lost.
    if (!backend_.copy_out(staging_, address, granularity_) || !backend_.finish() ||
        !backend_.write_disk(std::uint64_t{slot} * granularity_, staging_, granularity_)) {
      disk_free_.push_back(slot);
      outcome = Outcome::no_room;
      break;
    }
    settle(out[i], Tier::disk, slot);
  }
  report(moved, 0);
  return outcome;
}

bool Manager::take_host_slot(std::uint32_t& slot, std::uint64_t pending) {
  while (backend_.room(Tier::host) + slack_.host < pending + granularity_) {
    if (!demote_host_chunks()) {
      return false;
    }
  }
  if (host_free_.empty()) {
    const std::uint64_t fits =
        (backend_.room(Tier::host) + slack_.host - pending) / granularity_;
    const auto count = static_cast<std::uint32_t>(std::min<std::uint64_t>(fits, kHostBlockChunks));
    char* block = count > 0 ? static_cast<char*>(backend_.pin(count * granularity_)) : nullptr;
    if (block == nullptr) {
      return false;
    }
    for (std::uint32_t i = count; i-- > 0;) {
      host_free_.push_back(host_slots_ + i);
      host_blocks_.push_back(nullptr);
    }
    for (std::uint32_t i = 0; i < count; ++i) {
      host_blocks_[host_slots_ + i] = block + i * granularity_;
    }
    host_slots_ += count;
  }
  slot = host_free_.back();
  host_free_.pop_back();
  return true;
}

void* Manager::host_slot(std::uint32_t slot) const { return host_blocks_[slot]; }

bool Manager::demote_host_chunks() {
  const auto victim = least_recent(Tier::host, {});
  if (victim == allocations_.end()) {
    return false;
  }
  Allocation& allocation = victim->second;
  std::uint64_t moved = 0;
  for (std::uint32_t i = allocation.first; i <= allocation.last; ++i) {
    Chunk& chunk = allocation.segment->chunks[i];
    if (chunk.tier != Tier::host) {
      continue;
    }
    std::uint32_t slot = 0;
    if (!take_disk_slot(slot)) {
      break;
    }
    if (!backend_.write_disk(std::uint64_t{slot} * granularity_, host_slot(chunk.slot),
                             granularity_)) {
      disk_free_.push_back(slot);
      break;
    }
    host_free_.push_back(chunk.slot);
    chunk.tier = Tier::disk;
    chunk.slot = slot;
    stats_.host_bytes -= granularity_;
    stats_.disk_bytes += granularity_;
    report(0, 0);
    ++moved;
  }
  return moved > 0;
}

bool Manager::take_disk_slot(std::uint32_t& slot) {
  const std::uint64_t count = backend_.room(Tier::disk) / granularity_;
  if (!disk_tried_ && count > 0) {  // no room yet (the worker's other processes hold it): later
    disk_tried_ = true;
    staging_ = backend_.pin(kStagingChunks * granularity_);
    if (staging_ != nullptr && backend_.open_disk(count * granularity_)) {
      disk_slots_ = count;
    }
  }
  if (disk_slots_ == 0 || backend_.room(Tier::disk) + slack_.disk < granularity_) {
    return false;
  }
  if (!disk_free_.empty()) {
    slot = disk_free_.back();
    disk_free_.pop_back();
    return true;
  }
  // Slots are handed out in order the first time; past the preallocated ones (slack) the
  // file grows.
  if (disk_used_ < disk_slots_ + slack_.disk / granularity_) {
    slot = static_cast<std::uint32_t>(disk_used_++);
    return true;
  }
  return false;
}

void Manager::report(std::uint64_t chunks_out, std::uint64_t chunks_in) {
  stats_.chunks_out += chunks_out;
  stats_.chunks_in += chunks_in;
  backend_.report(stats_.host_bytes, stats_.disk_bytes, chunks_out, chunks_in);
}

}  // namespace tf::tiering
