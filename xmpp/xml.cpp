#include "xmpp/xml.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace parley::xml {

Element Element::text_node(std::string text) {
  Element node;
  node.text_ = std::move(text);
  return node;
}

const std::string* Element::find_attr(std::string_view name) const {
  for (const Attribute& attribute : attrs_) {
    if (attribute.name == name) return &attribute.value;
  }
  return nullptr;
}

std::string_view Element::attr(std::string_view name) const {
  const std::string* value = find_attr(name);
  return value ? std::string_view(*value) : std::string_view();
}

Element& Element::set_attr(std::string_view name, std::string value) {
  for (Attribute& attribute : attrs_) {
    if (attribute.name == name) {
      attribute.value = std::move(value);
      return *this;
    }
  }
  attrs_.push_back(Attribute{std::string(name), std::move(value)});
  return *this;
}

Element& Element::add_attr(std::string name, std::string value) {
  attrs_.push_back(Attribute{std::move(name), std::move(value)});
  return *this;
}

void Element::remove_attr(std::string_view name) {
  std::erase_if(attrs_, [name](const Attribute& attribute) { return attribute.name == name; });
}

Element& Element::add_child(Element child) {
  children_.push_back(std::move(child));
  return children_.back();
}

Element& Element::add_child(std::string name, std::string ns) {
  return add_child(Element(std::move(name), std::move(ns)));
}

// Adjacent text is merged into one node so that a tree does not depend on how
// the character data happened to be split (by the parser's input chunks, say).
Element& Element::add_text(std::string text) {
  if (text.empty()) return *this;
  if (!children_.empty() && children_.back().is_text()) {
    children_.back().text_ += text;
  } else {
    children_.push_back(text_node(std::move(text)));
  }
  return *this;
}

void Element::remove_children(std::string_view name, std::string_view ns) {
  std::erase_if(children_, [&](const Element& child) { return child.is(name, ns); });
}

const Element* Element::child(std::string_view name, std::string_view ns) const {
  for (const Element& candidate : children_) {
    if (candidate.is_text() || candidate.ns_ != ns) continue;
    if (name.empty() || candidate.name_ == name) return &candidate;
  }
  return nullptr;
}

Element* Element::child(std::string_view name, std::string_view ns) {
  return const_cast<Element*>(std::as_const(*this).child(name, ns));
}

const Element* Element::child_in(std::string_view ns) const { return child({}, ns); }

const Element* Element::first_child_element() const {
  for (const Element& candidate : children_) {
    if (!candidate.is_text()) return &candidate;
  }
  return nullptr;
}

std::string Element::text() const {
  if (is_text()) return text_;
  std::string result;
  for (const Element& candidate : children_) {
    if (candidate.is_text()) result += candidate.text_;
  }
  return result;
}

std::string Element::child_text(std::string_view name, std::string_view ns) const {
  const Element* found = child(name, ns);
  return found ? found->text() : std::string();
}

namespace {

enum class Context { text, attribute };

// Per byte: 0 when it is written as is, else which reference replaces it.
// Character data keeps tabs and newlines literal (readable bodies); a carriage
// return must become a reference or the reading parser turns it into "\n".
// In attribute values the reading parser turns literal tabs and newlines into
// spaces (XML 1.0 §3.3.3), so they are written as references too.
struct EscapeTable {
  std::array<std::uint8_t, 256> text{};
  std::array<std::uint8_t, 256> attribute{};
};

constexpr std::array<std::string_view, 9> references = {
    "", "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#13;", "&#10;", "&#9;"};

constexpr EscapeTable make_escape_table() {
  EscapeTable table;
  constexpr std::string_view specials = "&<>\"'\r\n\t";
  for (std::size_t i = 0; i < specials.size(); ++i) {
    const auto byte = static_cast<unsigned char>(specials[i]);
    table.attribute[byte] = static_cast<std::uint8_t>(i + 1);
    if (specials[i] != '\n' && specials[i] != '\t') table.text[byte] = static_cast<std::uint8_t>(i + 1);
  }
  return table;
}

constexpr EscapeTable escape_table = make_escape_table();

// One pass: runs that need no escaping are copied with one append each.
void escape_with(std::string& out, std::string_view text, Context context) {
  const auto& table = context == Context::text ? escape_table.text : escape_table.attribute;
  std::size_t run_start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const std::uint8_t reference = table[static_cast<unsigned char>(text[i])];
    if (reference == 0) continue;
    out.append(text.data() + run_start, i - run_start);
    out += references[reference];
    run_start = i + 1;
  }
  out.append(text.data() + run_start, text.size() - run_start);
}

void write_attribute(std::string& out, std::string_view name, std::string_view value) {
  out += ' ';
  out += name;
  out += "='";
  escape_with(out, value, Context::attribute);
  out += '\'';
}

}  // namespace

// Also escapes tab, newline and carriage return, so the result is exact both
// as character data and as an attribute value.
void escape_to(std::string& out, std::string_view text) { escape_with(out, text, Context::attribute); }

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  escape_to(out, text);
  return out;
}

// ns_streams elements are written with the "stream:" prefix that every stream
// header declares; a prefixed element leaves the default namespace of its
// children unchanged.
void serialize_to(std::string& out, const Element& element, std::string_view parent_ns) {
  if (element.is_text()) {
    escape_with(out, element.text_, Context::text);
    return;
  }
  const bool stream_prefixed = element.ns_ == ns_streams;
  out += '<';
  if (stream_prefixed) out += "stream:";
  out += element.name_;
  std::string_view children_ns = parent_ns;
  if (!stream_prefixed && element.ns_ != parent_ns) {
    write_attribute(out, "xmlns", element.ns_);
    children_ns = element.ns_;
  }
  for (const Attribute& attribute : element.attrs_) {
    write_attribute(out, attribute.name, attribute.value);
  }
  if (element.children_.empty()) {
    out += "/>";
    return;
  }
  out += '>';
  for (const Element& child : element.children_) serialize_to(out, child, children_ns);
  out += "</";
  if (stream_prefixed) out += "stream:";
  out += element.name_;
  out += '>';
}

std::size_t unescaped_size(const Element& element) {
  if (element.is_text()) return element.text_.size();
  // '<', '>' and '</', '>' or "/>", and an xmlns attribute if it is needed.
  std::size_t size = 2 * element.name_.size() + element.ns_.size() + 16;
  for (const Attribute& attribute : element.attrs_) size += attribute.name.size() + attribute.value.size() + 4;
  for (const Element& child : element.children_) size += unescaped_size(child);
  return size;
}

std::string serialize(const Element& element, std::string_view parent_ns) {
  std::string out;
  out.reserve(unescaped_size(element));
  serialize_to(out, element, parent_ns);
  return out;
}

std::string stream_header(std::string_view content_ns, const std::vector<Attribute>& attrs) {
  std::string out = "<?xml version='1.0'?><stream:stream";
  write_attribute(out, "xmlns", content_ns);
  write_attribute(out, "xmlns:stream", ns_streams);
  for (const Attribute& attribute : attrs) write_attribute(out, attribute.name, attribute.value);
  out += '>';
  return out;
}

}  // namespace parley::xml
