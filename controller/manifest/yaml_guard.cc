#include "controller/manifest/yaml_guard.h"

#include <string_view>

namespace zm::manifest {
namespace {

std::string_view TrimLeft(std::string_view s) {
  size_t i = s.find_first_not_of(" \t\r");
  return i == std::string_view::npos ? std::string_view() : s.substr(i);
}

// Skips node properties (!tag, &anchor) at the start of `s`. A property ends at white space or at a flow indicator
// (neither anchor nor tag characters include ",[]{}"): "&a,b" is the anchor "a" on a node that starts with ','.
std::string_view SkipProperties(std::string_view s) {
  while (!s.empty() && (s[0] == '!' || s[0] == '&')) {
    size_t end = s.find_first_of(" \t\r,[]{}");
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
  bool stray_comma = false;  // a ',' in block context where a token starts: yaml-cpp hangs on it (invalid YAML)

  void Scan(std::string_view line) {
    bool node_start = true;  // block context: a flow collection can only open where a node starts
    // Block context, after a quoted scalar or a flow collection closed and before the next indicator: only ':' (a
    // key) may follow in valid YAML, and yaml-cpp hangs on a ',' there.
    bool after_node = false;
    for (size_t i = 0; i < line.size(); i++) {
      char c = line[i];
      char prev = i == 0 ? ' ' : line[i - 1];
      char next = i + 1 < line.size() ? line[i + 1] : ' ';
      if (quote == '"') {
        if (c == '\\') {
          i++;
        } else if (c == '"') {
          quote = 0;
          after_node = flow_depth == 0;
        }
        continue;
      }
      if (quote == '\'') {
        if (c == '\'' && next == '\'') {
          i++;
        } else if (c == '\'') {
          quote = 0;
          after_node = flow_depth == 0;
        }
        continue;
      }
      if (c == ' ' || c == '\t') continue;
      if (c == '#' && (prev == ' ' || prev == '\t' || i == 0)) return;
      if (c == ',' && flow_depth == 0 && (node_start || after_node)) {
        stray_comma = true;
        return;
      }
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
        after_node = flow_depth == 0;
        continue;
      }
      // ": ", "- ", "? " (block indicators) leave us at a node start; anything else is content.
      bool indicator = (c == ':' || c == '-' || c == '?') && (next == ' ' || next == '\t' || i + 1 == line.size());
      if (flow_depth == 0) {
        node_start = indicator;
        if (indicator) after_node = false;
      }
    }
  }
};

}  // namespace

int UnsafeYamlLine(const std::string& text) {
  // YAML allows no C0 control but tab, LF and CR, and no DEL (c-printable); yaml-cpp reads past a NUL as if it were
  // not there ("\0,\0" hangs like ","). Refused before anything else.
  // A CR that does not end a line (CRLF) is refused too: yaml-cpp mis-reads it inside anchors ("&\rx,y" hangs).
  int control_line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') ++control_line;
    bool lone_cr = c == '\r' && (i + 1 == text.size() || text[i + 1] != '\n');
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f || lone_cr) return control_line;
  }
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
    } else if (IsMarker(line, "...")) {
      // The end of a document; whatever follows on the line starts the next one (yaml-cpp reads it so).
      at_root = true;
      lex = Lexer();
      rest = line.substr(3);
    } else if (line.substr(0, 1) == "%") {
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
    } else if (std::string_view node = SkipProperties(body);
               plain && !node.empty() && node[0] == ',' && indent <= root_indent) {
      return line_no;  // a ',' that would start a sibling of the root node (after its anchor or tag, if any)
    }
    lex.Scan(rest);
    if (lex.stray_comma) return line_no;
  }
  return 0;
}

}  // namespace zm::manifest
