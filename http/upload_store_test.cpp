#include "http/upload_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

namespace parley::http {
namespace {

namespace fs = std::filesystem;

class UploadStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory = fs::temp_directory_path() / ("parley-upload-test-" + std::to_string(::getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(directory);
    limits.max_file_size = 1000;
    limits.quota = 2500;
    limits.expire_after = std::chrono::seconds(3600);
    limits.slot_timeout = std::chrono::seconds(300);
  }
  void TearDown() override { fs::remove_all(directory); }

  UploadStore make_store() {
    return UploadStore(directory, limits, [this] { return std::chrono::system_clock::time_point(now); });
  }

  // Writes 'size' bytes as the body of a PUT and completes it.
  static bool put(UploadStore& store, const UploadRecord& record) {
    auto start = store.begin_put(record.id);
    if (!start || start->busy) return false;
    std::ofstream(store.partial_path(record.id), std::ios::binary) << std::string(record.size, 'x');
    return store.finish_put(record.id, true);
  }

  fs::path directory;
  UploadLimits limits;
  std::chrono::seconds now{1'000'000};
};

TEST(SanitiseFilename, KeepsOrdinaryAndUnicodeNames) {
  EXPECT_EQ(sanitise_filename("photo.jpg"), "photo.jpg");
  EXPECT_EQ(sanitise_filename("Фото 2024.jpg"), "Фото 2024.jpg");
  EXPECT_EQ(sanitise_filename("a%20b&c=d.txt"), "a%20b&c=d.txt");
}

TEST(SanitiseFilename, DropsPathsDotsAndControlCharacters) {
  EXPECT_EQ(sanitise_filename("../../etc/passwd"), "passwd");
  EXPECT_EQ(sanitise_filename("C:\\Users\\me\\cv.pdf"), "cv.pdf");
  EXPECT_EQ(sanitise_filename(".htaccess"), "htaccess");
  EXPECT_EQ(sanitise_filename("  name.txt . "), "name.txt");
  EXPECT_EQ(sanitise_filename("a\nb\rc\td\x7f.txt"), "a_b_c_d_.txt");
  EXPECT_EQ(sanitise_filename(std::string("nul\0byte", 8)), "nul_byte");
  EXPECT_EQ(sanitise_filename(".."), "");
  EXPECT_EQ(sanitise_filename("dir/"), "");
  EXPECT_EQ(sanitise_filename(""), "");
}

TEST(SanitiseFilename, ReplacesInvalidUtf8) {
  EXPECT_EQ(sanitise_filename("a\xff.txt"), "a_.txt");
  EXPECT_EQ(sanitise_filename("\xc0\xaf.txt"), "__.txt");       // overlong '/'
  EXPECT_EQ(sanitise_filename("\xed\xa0\x80.txt"), "___.txt");  // a surrogate
  EXPECT_EQ(sanitise_filename("cut\xe2\x82"), "cut__");         // truncated sequence
}

TEST(SanitiseFilename, LongNamesAreCutOnACharacterBoundary) {
  const auto name = sanitise_filename(std::string(300, 'a'));
  EXPECT_EQ(name.size(), max_filename_bytes);
  std::string euros;
  for (int i = 0; i < 100; ++i) euros += "\xe2\x82\xac";
  const auto cut = sanitise_filename(euros);
  EXPECT_EQ(cut.size(), 198u);  // 66 whole three-byte characters
  EXPECT_EQ(sanitise_filename(cut), cut);
}

TEST(NormaliseContentType, AcceptsMediaTypesWithParameters) {
  EXPECT_EQ(normalise_content_type("image/jpeg"), "image/jpeg");
  EXPECT_EQ(normalise_content_type("Image/JPEG"), "image/jpeg");
  EXPECT_EQ(normalise_content_type("text/plain; charset=UTF-8"), "text/plain; charset=UTF-8");
  EXPECT_EQ(normalise_content_type("application/vnd.oasis.opendocument.text"),
            "application/vnd.oasis.opendocument.text");
}

TEST(NormaliseContentType, RefusesMalformedTypes) {
  for (const std::string& bad :
       std::vector<std::string>{"", "image", "/jpeg", "image/", "image/jpeg\r\nX-Evil: 1", "im age/jpeg",
                                "image/jp\"eg", "a/b/c", "text/plain; x=\x01", std::string(300, 'a') + "/b"}) {
    EXPECT_FALSE(normalise_content_type(bad)) << bad;
  }
}

TEST(Meta, RoundTripsAndRefusesDamage) {
  UploadRecord record{"0123456789abcdef0123456789abcdef", "alice@example.org", "a=b.txt", 42, "text/plain", 100, 50};
  const auto text = format_meta(record);
  const auto back = parse_meta(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->id, record.id);
  EXPECT_EQ(back->owner, record.owner);
  EXPECT_EQ(back->filename, "a=b.txt");
  EXPECT_EQ(back->size, 42u);
  EXPECT_EQ(back->content_type, "text/plain");
  EXPECT_EQ(back->slot_expires, 100);
  EXPECT_EQ(back->stored_at, 50);
  EXPECT_FALSE(parse_meta(text.substr(0, text.size() - 1)));     // truncated
  EXPECT_FALSE(parse_meta(text.substr(0, text.find("size="))));  // fields missing
  auto bad_size = text;
  bad_size.replace(bad_size.find("size=42"), 7, "size=4x");
  EXPECT_FALSE(parse_meta(bad_size));
  auto bad_name = text;
  bad_name.replace(bad_name.find("a=b.txt"), 7, "../x.tx");
  EXPECT_FALSE(parse_meta(bad_name));
  EXPECT_FALSE(parse_meta(""));
}

TEST_F(UploadStoreTest, SecretIsCreatedPrivateAndKept) {
  const auto first = make_store().secret();
  EXPECT_EQ(first.size(), 64u);
  struct stat info {};
  ASSERT_EQ(::stat((directory / "secret").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  EXPECT_EQ(make_store().secret(), first);
}

TEST_F(UploadStoreTest, PerFileLimit) {
  auto store = make_store();
  EXPECT_EQ(store.reserve("alice@x", "a", 1001, "text/plain").refusal, UploadStore::Refusal::too_large);
  EXPECT_EQ(store.reserve("alice@x", "a", 1000, "text/plain").refusal, UploadStore::Refusal::none);
  EXPECT_EQ(store.usage("alice@x"), 1000u);
}

TEST_F(UploadStoreTest, QuotaCountsStoredFilesAndOpenSlotsPerUser) {
  auto store = make_store();
  const auto first = store.reserve("alice@x", "a", 1000, "text/plain");
  ASSERT_EQ(first.refusal, UploadStore::Refusal::none);
  ASSERT_TRUE(put(store, first.record));
  ASSERT_EQ(store.reserve("alice@x", "b", 1000, "text/plain").refusal, UploadStore::Refusal::none);  // open slot
  EXPECT_EQ(store.usage("alice@x"), 2000u);
  EXPECT_EQ(store.reserve("alice@x", "c", 501, "text/plain").refusal, UploadStore::Refusal::over_quota);
  EXPECT_EQ(store.reserve("alice@x", "c", 500, "text/plain").refusal, UploadStore::Refusal::none);
  EXPECT_EQ(store.reserve("alice@x", "d", 1, "text/plain").refusal, UploadStore::Refusal::over_quota);
  EXPECT_EQ(store.reserve("bob@x", "d", 1000, "text/plain").refusal, UploadStore::Refusal::none);
  EXPECT_EQ(store.usage("alice@x"), 2500u);
  EXPECT_EQ(store.usage("bob@x"), 1000u);
}

TEST_F(UploadStoreTest, OpenSlotsPerUserAreLimited) {
  limits.max_open_slots = 3;
  auto store = make_store();
  std::vector<UploadRecord> slots;
  for (int i = 0; i < 3; ++i) slots.push_back(store.reserve("alice@x", "a", 1, "text/plain").record);
  EXPECT_EQ(store.reserve("alice@x", "a", 1, "text/plain").refusal, UploadStore::Refusal::too_many_slots);
  EXPECT_EQ(store.reserve("bob@x", "a", 1, "text/plain").refusal, UploadStore::Refusal::none);
  ASSERT_TRUE(put(store, slots[0]));  // a used slot no longer counts
  EXPECT_EQ(store.reserve("alice@x", "a", 1, "text/plain").refusal, UploadStore::Refusal::none);
  EXPECT_EQ(store.reserve("alice@x", "a", 1, "text/plain").refusal, UploadStore::Refusal::too_many_slots);
  now += std::chrono::seconds(300);  // nor does an expired one
  store.expire();
  EXPECT_EQ(store.reserve("alice@x", "a", 1, "text/plain").refusal, UploadStore::Refusal::none);
  EXPECT_EQ(store.usage("alice@x"), 2u);
}

TEST_F(UploadStoreTest, UnusedSlotsAndOldFilesExpireAndFreeTheQuota) {
  auto store = make_store();
  const auto stored = store.reserve("alice@x", "a", 1000, "text/plain").record;
  ASSERT_TRUE(put(store, stored));
  now += std::chrono::seconds(10);
  const auto unused = store.reserve("alice@x", "b", 1000, "text/plain").record;
  now += std::chrono::seconds(300);
  EXPECT_FALSE(store.find(unused.id));
  EXPECT_TRUE(store.find(stored.id));
  EXPECT_EQ(store.expire(), 1u);
  EXPECT_FALSE(fs::exists(directory / unused.id));
  EXPECT_EQ(store.usage("alice@x"), 1000u);
  now += std::chrono::seconds(3600);
  EXPECT_FALSE(store.find(stored.id));
  EXPECT_EQ(store.expire(), 1u);
  EXPECT_FALSE(fs::exists(directory / stored.id));
  EXPECT_EQ(store.usage("alice@x"), 0u);
  EXPECT_EQ(store.record_count(), 0u);
}

TEST_F(UploadStoreTest, OnePutPerSlot) {
  auto store = make_store();
  const auto record = store.reserve("alice@x", "a", 10, "text/plain").record;
  const auto first = store.begin_put(record.id);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->busy);
  EXPECT_TRUE(store.begin_put(record.id)->busy);  // while the first runs
  store.finish_put(record.id, false);             // it failed: the slot is free again
  EXPECT_FALSE(store.begin_put(record.id)->busy);
  store.finish_put(record.id, false);
  ASSERT_TRUE(put(store, record));
  EXPECT_TRUE(store.begin_put(record.id)->busy);  // stored already
  EXPECT_FALSE(store.begin_put("0123456789abcdef0123456789abcdef"));
}

TEST_F(UploadStoreTest, ARestartKeepsStoredFilesAndOpenSlotsAndDropsTheRest) {
  std::string kept, open, broken;
  {
    auto store = make_store();
    const auto stored = store.reserve("alice@x", "a.txt", 10, "text/plain").record;
    ASSERT_TRUE(put(store, stored));
    kept = stored.id;
    open = store.reserve("alice@x", "b.txt", 20, "text/plain").record.id;
    broken = store.reserve("bob@x", "c.txt", 30, "text/plain").record.id;
    std::ofstream(store.partial_path(open)) << "half";
  }
  std::ofstream(directory / broken / "meta", std::ios::trunc) << "id=garbage\n";
  fs::create_directory(directory / "not-an-upload");
  auto store = make_store();
  EXPECT_EQ(store.load(), 2u);
  EXPECT_TRUE(store.find(kept)->complete());
  EXPECT_FALSE(store.find(open)->complete());
  EXPECT_FALSE(fs::exists(store.partial_path(open)));
  EXPECT_FALSE(store.find(broken));
  EXPECT_FALSE(fs::exists(directory / broken));
  EXPECT_TRUE(fs::exists(directory / "not-an-upload"));  // not ours: left alone
  EXPECT_EQ(store.usage("alice@x"), 30u);
  EXPECT_EQ(store.usage("bob@x"), 0u);
}

TEST_F(UploadStoreTest, LoadDropsFilesThatExpiredWhileStoppedOrLostTheirData) {
  std::string old_file, truncated;
  {
    auto store = make_store();
    const auto first = store.reserve("alice@x", "a", 10, "text/plain").record;
    ASSERT_TRUE(put(store, first));
    old_file = first.id;
    now += std::chrono::seconds(3000);
    const auto second = store.reserve("alice@x", "b", 10, "text/plain").record;
    ASSERT_TRUE(put(store, second));
    truncated = second.id;
  }
  fs::resize_file(directory / truncated / "data", 5);
  now += std::chrono::seconds(700);
  auto store = make_store();
  EXPECT_EQ(store.load(), 0u);
  EXPECT_FALSE(fs::exists(directory / old_file));
  EXPECT_FALSE(fs::exists(directory / truncated));
}

TEST_F(UploadStoreTest, IdsAreUnguessableHex) {
  auto store = make_store();
  const auto a = store.reserve("alice@x", "a", 1, "text/plain").record.id;
  const auto b = store.reserve("alice@x", "a", 1, "text/plain").record.id;
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

}  // namespace
}  // namespace parley::http
