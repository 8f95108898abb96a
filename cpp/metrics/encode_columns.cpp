#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tf/line_protocol.h"

namespace tf::metrics {
namespace {

using Escapes = std::array<bool, 256>;

constexpr Escapes escapes_of(std::string_view specials) {
  Escapes table{};
  for (const char c : specials) {
    table[static_cast<unsigned char>(c)] = true;
  }
  return table;
}

// The same sets as the Python encoder: backslashes are doubled so that a name ending in one
// never escapes the separator after it.
constexpr Escapes kMeasurement = escapes_of(", \\");
constexpr Escapes kKey = escapes_of(",= \\");
constexpr Escapes kString = escapes_of("\"\\");

void append_escaped(std::string& out, std::string_view text, const Escapes& escapes) {
  for (const char c : text) {
    if (escapes[static_cast<unsigned char>(c)]) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
}

template <typename Integer>
void append_integer(std::string& out, Integer value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

// Tag values repeat row after row (same node, same pool); the last escaped value of each
// column is kept and reused while the caller hands the same bytes again.
struct TagWriter {
  std::string prefix;  // ",key="
  const std::string_view* values;
  std::string_view last;
  std::string last_escaped;
};

std::optional<std::string> check_text(std::string_view text, bool allow_empty) {
  if (!allow_empty && text.empty()) {
    return "must not be empty";
  }
  if (text.find('\n') != std::string_view::npos) {
    return "must not contain a newline";
  }
  return std::nullopt;
}

std::optional<std::string> append_field(std::string& out, const FieldColumn& column,
                                        std::size_t row) {
  switch (column.kind) {
    case FieldKind::Float: {
      const double value = static_cast<const double*>(column.values)[row];
      if (!std::isfinite(value)) {
        return "must be a finite float, got " + std::to_string(value);
      }
      append_float(out, value);
      return std::nullopt;
    }
    case FieldKind::Int:
      append_integer(out, static_cast<const std::int64_t*>(column.values)[row]);
      out.push_back('i');
      return std::nullopt;
    case FieldKind::Unsigned:
      append_integer(out, static_cast<const std::uint64_t*>(column.values)[row]);
      out.push_back('u');
      return std::nullopt;
    case FieldKind::Bool:
      out.push_back(static_cast<const bool*>(column.values)[row] ? 't' : 'f');
      return std::nullopt;
    case FieldKind::String: {
      const std::string_view value = static_cast<const std::string_view*>(column.values)[row];
      if (auto problem = check_text(value, true)) {
        return problem;
      }
      out.push_back('"');
      append_escaped(out, value, kString);
      out.push_back('"');
      return std::nullopt;
    }
  }
  return "unknown field kind";
}

}  // namespace

std::optional<CellError> encode_columns(std::string_view measurement,
                                        std::vector<TagColumn> tags,
                                        const std::vector<FieldColumn>& fields,
                                        const std::int64_t* times_ns, std::size_t rows,
                                        std::int64_t unit_ns, std::string& out) {
  std::vector<std::size_t> tag_order(tags.size());
  for (std::size_t i = 0; i < tag_order.size(); ++i) {
    tag_order[i] = i;
  }
  // Byte order of UTF-8 keys is code-point order, the order the Python encoder sorts in.
  std::sort(tag_order.begin(), tag_order.end(),
            [&](std::size_t a, std::size_t b) { return tags[a].key < tags[b].key; });
  std::vector<TagWriter> writers;
  for (const std::size_t index : tag_order) {
    TagWriter writer{",", tags[index].values, {}, {}};
    append_escaped(writer.prefix, tags[index].key, kKey);
    writer.prefix.push_back('=');
    writers.push_back(std::move(writer));
  }
  std::vector<std::string> field_prefixes;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    std::string prefix(i == 0 ? " " : ",");
    append_escaped(prefix, fields[i].key, kKey);
    prefix.push_back('=');
    field_prefixes.push_back(std::move(prefix));
  }
  std::string head;
  append_escaped(head, measurement, kMeasurement);
  const std::int64_t earliest = std::numeric_limits<std::int64_t>::min() / unit_ns;

  const std::size_t start = out.size();
  for (std::size_t row = 0; row < rows; ++row) {
    out.append(head);
    for (std::size_t t = 0; t < writers.size(); ++t) {
      TagWriter& writer = writers[t];
      const std::string_view value = writer.values[row];
      if (row == 0 || value.data() != writer.last.data() || value.size() != writer.last.size()) {
        if (auto problem = check_text(value, false)) {
          return CellError{CellError::Where::Tag, tag_order[t], row, *problem};
        }
        writer.last = value;
        writer.last_escaped.clear();
        append_escaped(writer.last_escaped, value, kKey);
      }
      out.append(writer.prefix);
      out.append(writer.last_escaped);
    }
    for (std::size_t f = 0; f < fields.size(); ++f) {
      out.append(field_prefixes[f]);
      if (auto problem = append_field(out, fields[f], row)) {
        return CellError{CellError::Where::Field, f, row, *problem};
      }
    }
    const std::int64_t time = times_ns[row];
    std::int64_t stamp = time / unit_ns;
    if (time % unit_ns != 0 && time < 0) {
      --stamp;  // floor, as Python's //
    }
    if (stamp < earliest) {
      return CellError{CellError::Where::Time, 0, row,
                       "floored to " + std::to_string(stamp) + " units of " +
                           std::to_string(unit_ns) +
                           " ns is before the signed 64-bit nanosecond range"};
    }
    out.push_back(' ');
    append_integer(out, stamp);
    out.push_back('\n');
    if (row == 0) {
      out.reserve(out.size() + (out.size() - start) * (rows - 1) * 9 / 8);
    }
  }
  return std::nullopt;
}

}  // namespace tf::metrics
