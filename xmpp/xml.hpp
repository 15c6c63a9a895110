// XML element tree used for every stanza, with a namespace-aware serializer.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::xml {

inline constexpr std::string_view ns_client = "jabber:client";
inline constexpr std::string_view ns_server = "jabber:server";
inline constexpr std::string_view ns_component = "jabber:component:accept";
inline constexpr std::string_view ns_streams = "http://etherx.jabber.org/streams";
inline constexpr std::string_view ns_xml = "http://www.w3.org/XML/1998/namespace";

struct Attribute {
  std::string name;  // "xml:lang" for the XML namespace; plain local name otherwise
  std::string value;

  bool operator==(const Attribute&) const = default;
};

// An element, or a text node when name() is empty. Stanzas of the stream's
// content namespace (jabber:client, jabber:server, jabber:component:accept)
// are always held as jabber:client so the router never translates them.
class Element {
 public:
  Element() = default;
  explicit Element(std::string name, std::string ns = std::string(ns_client))
      : name_(std::move(name)), ns_(std::move(ns)) {}
  static Element text_node(std::string text);

  const std::string& name() const { return name_; }
  const std::string& ns() const { return ns_; }
  bool is_text() const { return name_.empty(); }
  bool is(std::string_view name, std::string_view ns) const { return name_ == name && ns_ == ns; }
  void set_name(std::string name) { name_ = std::move(name); }
  void set_ns(std::string ns) { ns_ = std::move(ns); }

  // Attributes. attr() returns an empty view when the attribute is absent.
  std::string_view attr(std::string_view name) const;
  const std::string* find_attr(std::string_view name) const;
  bool has_attr(std::string_view name) const { return find_attr(name) != nullptr; }
  Element& set_attr(std::string_view name, std::string value);
  // Appends without looking for one of the same name, for callers whose names
  // are already known to be unique (the parser: expat refuses duplicates).
  Element& add_attr(std::string name, std::string value);
  void reserve_attributes(std::size_t count) { attrs_.reserve(count); }
  void remove_attr(std::string_view name);
  const std::vector<Attribute>& attributes() const { return attrs_; }

  // Children, in document order (text nodes included).
  const std::vector<Element>& children() const { return children_; }
  std::vector<Element>& children() { return children_; }
  Element& add_child(Element child);
  Element& add_child(std::string name, std::string ns);  // returns the new child
  Element& add_text(std::string text);                   // returns *this
  void remove_children(std::string_view name, std::string_view ns);

  // First child element with this name and namespace (any name when name is empty).
  const Element* child(std::string_view name, std::string_view ns) const;
  Element* child(std::string_view name, std::string_view ns);
  // First child element of any name in this namespace.
  const Element* child_in(std::string_view ns) const;
  // The first child element, ignoring text nodes.
  const Element* first_child_element() const;
  // Concatenated text of the direct text-node children (for a text node: its text).
  std::string text() const;
  // text() of the first matching child, or empty.
  std::string child_text(std::string_view name, std::string_view ns) const;

  bool operator==(const Element&) const = default;

 private:
  // Write and measure text nodes without copying them out through text().
  friend void serialize_to(std::string& out, const Element& element, std::string_view parent_ns);
  friend std::size_t unescaped_size(const Element& element);

  std::string name_;
  std::string ns_;
  std::vector<Attribute> attrs_;
  std::vector<Element> children_;
  std::string text_;  // only for text nodes
};

// Escapes &, <, >, " and ' for attribute values and character data.
std::string escape(std::string_view text);
void escape_to(std::string& out, std::string_view text);

// Serialises an element. An xmlns attribute is written wherever the element's
// namespace differs from its parent's; parent_ns is the namespace in scope
// where the element is written (the stream's content namespace maps to jabber:client).
std::string serialize(const Element& element, std::string_view parent_ns = ns_client);
// About the size serialize() returns when nothing needs escaping: what to
// reserve so the output grows once.
std::size_t unescaped_size(const Element& element);
void serialize_to(std::string& out, const Element& element, std::string_view parent_ns = ns_client);

// The opening tag of a stream (never closed here): <?xml version='1.0'?><stream:stream ...>
// attrs are written in order; content_ns is the stream's default namespace.
std::string stream_header(std::string_view content_ns, const std::vector<Attribute>& attrs);
inline constexpr std::string_view stream_footer = "</stream:stream>";

}  // namespace parley::xml
