#include <charconv>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include "tf/line_protocol.h"

namespace tf::metrics {

void append_float(std::string& out, double value) {
  // Scientific to_chars yields exactly the shortest round-trip digits; only the layout
  // differs from Python, so the digits and exponent are taken apart and laid out again.
  char buffer[40];
  const auto result =
      std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
  if (text.front() == '-') {
    out.push_back('-');
    text.remove_prefix(1);
  }
  const std::size_t e = text.find('e');
  std::string digits(1, text[0]);
  if (e > 1) {
    digits.append(text.substr(2, e - 2));
  }
  int exponent = 0;
  const std::string_view exponent_text = text.substr(e + 2);  // skip "e" and its sign
  std::from_chars(exponent_text.data(), exponent_text.data() + exponent_text.size(), exponent);
  if (text[e + 1] == '-') {
    exponent = -exponent;
  }
  const int point = exponent + 1;  // digits before the decimal point
  const auto count = static_cast<int>(digits.size());
  if (point > -4 && point <= 16) {
    if (point <= 0) {
      out.append("0.");
      out.append(static_cast<std::size_t>(-point), '0');
      out.append(digits);
    } else if (point >= count) {
      out.append(digits);
      out.append(static_cast<std::size_t>(point - count), '0');
      out.append(".0");
    } else {
      out.append(digits, 0, static_cast<std::size_t>(point));
      out.push_back('.');
      out.append(digits, static_cast<std::size_t>(point));
    }
    return;
  }
  out.push_back(digits[0]);
  if (count > 1) {
    out.push_back('.');
    out.append(digits, 1);
  }
  out.push_back('e');
  out.push_back(exponent < 0 ? '-' : '+');
  const int magnitude = exponent < 0 ? -exponent : exponent;
  if (magnitude < 10) {
    out.push_back('0');
  }
  out.append(std::to_string(magnitude));
}

}  // namespace tf::metrics
