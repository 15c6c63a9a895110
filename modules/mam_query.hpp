// Archive queries of XEP-0313 (urn:xmpp:mam:2) with RSM paging (XEP-0059),
// shared by the user archives (mam module) and the room archives (muc
// module): the query form, reading a query's data form and RSM set, and
// answering it from an ArchiveStore.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.hpp"
#include "xmpp/xml.hpp"

namespace parley::modules::mam {

inline constexpr std::string_view ns_mam = "urn:xmpp:mam:2";
inline constexpr std::string_view ns_mam_extended = "urn:xmpp:mam:2#extended";
inline constexpr std::string_view ns_rsm = "http://jabber.org/protocol/rsm";
inline constexpr std::string_view ns_forward = "urn:xmpp:forward:0";

// How the 'with' field matches what an archive stores: a user archive keeps
// the peer's bare JID, a room archive the sender's occupant JID (room/nick).
enum class WithForm { bare, full };

struct QueryOptions {
  std::size_t max_page = 250;  // the largest page, whatever the RSM <max/> asks for
  WithForm with_form = WithForm::bare;
};

// The answer to <iq type='get'><query xmlns='urn:xmpp:mam:2'/></iq>: the
// fields a query may use.
xml::Element query_form(const xml::Element& request);

// Reads a <query/>'s data form and RSM set into 'query'; returns the error
// condition when they are not acceptable, "" otherwise.
std::string read_query(const xml::Element& payload, const QueryOptions& options, storage::ArchiveQuery& query);

// Answers a query iq on the archive of 'owner' (a user's bare JID or a
// room's JID) for 'requester' (a full JID): the <result/> messages from
// 'owner', oldest first, then the iq result with <fin/>; or a single iq error.
// Blocking (storage): call it off the I/O threads.
std::vector<xml::Element> answer_query(storage::ArchiveStore& store, const std::string& owner,
                                       const std::string& requester, const xml::Element& request,
                                       const QueryOptions& options);

}  // namespace parley::modules::mam
