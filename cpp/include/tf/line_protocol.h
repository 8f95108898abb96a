// Columnar influx line-protocol encoder: one line per row, the same text the Python encoder
// (tensorfusion.metrics.line_protocol) writes for the equivalent points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tf::metrics {

// The influx field types: f (float), i (signed), u (unsigned), b (bool), s (string).
enum class FieldKind : char { Float = 'f', Int = 'i', Unsigned = 'u', Bool = 'b', String = 's' };

struct TagColumn {
  std::string key;                       // unescaped
  const std::string_view* values;        // one per row, UTF-8
};

struct FieldColumn {
  std::string key;                       // unescaped
  FieldKind kind;
  const void* values;                    // double, int64_t, uint64_t, bool or std::string_view
};

// Which cell could not be encoded; `column` indexes the tag or field columns as given.
struct CellError {
  enum class Where { Tag, Field, Time } where;
  std::size_t column;
  std::size_t row;
  std::string message;
};

// Appends `rows` lines to `out`. Tags are written sorted by key (influx recommends it); the
// timestamp is floored to units of `unit_ns`. Names are the caller's to validate; cell values
// are checked here (empty or multi-line tag values, non-finite floats, multi-line strings,
// timestamps that floor out of the nanosecond range), and the first bad one is returned.
std::optional<CellError> encode_columns(std::string_view measurement,
                                        std::vector<TagColumn> tags,
                                        const std::vector<FieldColumn>& fields,
                                        const std::int64_t* times_ns, std::size_t rows,
                                        std::int64_t unit_ns, std::string& out);

// Python's repr() of a finite double: the shortest digits that read back as the same value,
// fixed notation for decimal exponents in [-4, 16), else d.ddde+XX.
void append_float(std::string& out, double value);

}  // namespace tf::metrics
