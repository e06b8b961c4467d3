// The configuration parsers on arbitrary settings. The input is read as
// lines "KEY=VALUE" (config.dict lists the keys the agent knows), the way an
// environment would hand them over; the whole input also goes through the
// key/value list parser and the percent decoder on their own.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view in(reinterpret_cast<const char *>(data), size);
  std::map<std::string, std::string, std::less<>> settings;
  for (size_t pos = 0; pos < in.size();) {
    size_t eol = in.find('\n', pos);
    std::string_view line = in.substr(pos, eol == std::string_view::npos ? in.npos : eol - pos);
    pos = eol == std::string_view::npos ? in.size() : eol + 1;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    settings[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  std::vector<std::string> warnings;
  otelagent::Config cfg = otelagent::config_parse(settings, &warnings);
  if (cfg.max_export_batch_size > cfg.max_queue_size) std::abort();

  otelagent::KeyValues kv;
  if (!otelagent::parse_key_values(in, &kv) && !kv.empty()) std::abort();
  std::string decoded;
  if (otelagent::percent_decode(in, &decoded) && decoded.size() > in.size()) std::abort();
  return 0;
}
