#include "controller/manifest/yaml_guard.h"

#include <string_view>

namespace zm::manifest {
namespace {

std::string_view TrimLeft(std::string_view s) {
  size_t i = s.find_first_not_of(" \t\r");
  return i == std::string_view::npos ? std::string_view() : s.substr(i);
}

// Skips node properties (!tag, &anchor) at the start of `s`.
std::string_view SkipProperties(std::string_view s) {
  while (!s.empty() && (s[0] == '!' || s[0] == '&')) {
    size_t end = s.find_first_of(" \t\r");
    s = end == std::string_view::npos ? std::string_view() : TrimLeft(s.substr(end));
  }
  return s;
}

bool IsMarker(std::string_view line, std::string_view marker) {
  return line.substr(0, 3) == marker && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
}

// Rough lexical state carried across lines: open flow collections and quoted scalars. Only used to avoid flagging
// valid YAML ("[a\n, b]"); an imprecise answer errs towards rejecting odd-looking text, never towards a hang.
struct Lexer {
  int flow_depth = 0;
  char quote = 0;

  void Scan(std::string_view line) {
    bool node_start = true;  // block context: a flow collection can only open where a node starts
    for (size_t i = 0; i < line.size(); i++) {
      char c = line[i];
      char prev = i == 0 ? ' ' : line[i - 1];
      char next = i + 1 < line.size() ? line[i + 1] : ' ';
      if (quote == '"') {
        if (c == '\\') {
          i++;
        } else if (c == '"') {
          quote = 0;
        }
        continue;
      }
      if (quote == '\'') {
        if (c == '\'' && next == '\'') {
          i++;
        } else if (c == '\'') {
          quote = 0;
        }
        continue;
      }
      if (c == ' ' || c == '\t') continue;
      if (c == '#' && (prev == ' ' || prev == '\t' || i == 0)) return;
      bool start = flow_depth > 0
                       ? (prev == ' ' || prev == '\t' || prev == '[' || prev == '{' || prev == ',' || prev == ':')
                       : node_start;
      if ((c == '"' || c == '\'') && start) {
        quote = c;
        continue;
      }
      if ((c == '[' || c == '{') && (flow_depth > 0 || node_start)) {
        flow_depth++;
        continue;
      }
      if ((c == ']' || c == '}') && flow_depth > 0) {
        flow_depth--;
        continue;
      }
      // ": ", "- ", "? " (block indicators) leave us at a node start; anything else is content.
      bool indicator = (c == ':' || c == '-' || c == '?') && (next == ' ' || next == '\t' || i + 1 == line.size());
      if (flow_depth == 0) node_start = indicator;
    }
  }
};

}  // namespace

int UnsafeYamlLine(const std::string& text) {
  bool at_root = true;  // looking for the first node of the current document
  size_t root_indent = 0;
  Lexer lex;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line(text.data() + pos, (nl == std::string::npos ? text.size() : nl) - pos);
    pos = nl == std::string::npos ? text.size() + 1 : nl + 1;
    line_no++;
    std::string_view rest = line;
    // Markers count whatever the lexer believes: yaml-cpp honours them at column 0 (or fails) in any context.
    if (IsMarker(line, "---")) {
      at_root = true;
      lex = Lexer();
      rest = line.substr(3);
    } else if (IsMarker(line, "...") || line.substr(0, 1) == "%") {
      // yaml-cpp takes '%' as a directive even mid-document: a new root follows.
      at_root = true;
      lex = Lexer();
      continue;
    }
    bool plain = lex.quote == 0 && lex.flow_depth == 0;
    std::string_view body = TrimLeft(rest);
    size_t indent = line.size() - body.size();
    if (plain && at_root) {
      body = SkipProperties(body);
      if (body.empty() || body[0] == '#') continue;  // the root node is on a later line
      if (body[0] == ',') return line_no;
      at_root = false;
      root_indent = indent;
    } else if (plain && !body.empty() && body[0] == ',' && indent <= root_indent) {
      return line_no;  // a ',' that would start a sibling of the root node
    }
    lex.Scan(rest);
  }
  return 0;
}

}  // namespace zm::manifest
