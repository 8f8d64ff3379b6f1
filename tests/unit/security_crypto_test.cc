// AES-256-GCM sealing, the key-encryption key file, secret envelopes and the redacting
// SecretBytes type.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "security/aead.h"
#include "security/key_file.h"
#include "security/secret_bytes.h"
#include "security/secrets.h"
#include "spdlog/spdlog.h"
#include "test_util.h"

namespace warren::security {
namespace {

using testing_util::TempDir;

SecretBytes Key(char fill) { return SecretBytes(std::string(kAeadKeySize, fill)); }

TEST(SecretBytesTest, EveryPrintPathRedacts) {
  const SecretBytes s(std::string("hunter2-value"));
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "<redacted>");
  EXPECT_EQ(s.DebugString(), "<redacted>");
  EXPECT_EQ(fmt::format("v={}", s), "v=<redacted>");
  EXPECT_EQ(::testing::PrintToString(s), "<redacted>");
  EXPECT_EQ(s.reveal(), "hunter2-value");
}

TEST(SecretBytesTest, MoveLeavesNothingBehindAndEqualsComparesBytes) {
  SecretBytes a(std::string("short"));
  SecretBytes b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): the wipe is the point
  EXPECT_EQ(b.reveal(), "short");
  EXPECT_TRUE(b.Equals(SecretBytes(std::string("short"))));
  EXPECT_FALSE(b.Equals(SecretBytes(std::string("shorT"))));
  EXPECT_FALSE(b.Equals(SecretBytes(std::string("short!"))));
}

TEST(AeadTest, SealOpenRoundTripWithFreshNonces) {
  const SecretBytes key = Key('k');
  auto a = Seal(key, "payload", "aad");
  auto b = Seal(key, "payload", "aad");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->nonce().size(), kAeadNonceSize);
  EXPECT_EQ(a->ciphertext().size(), 7 + kAeadTagSize);
  EXPECT_NE(a->nonce(), b->nonce());
  EXPECT_NE(a->ciphertext(), b->ciphertext());
  EXPECT_EQ(a->ciphertext().find("payload"), std::string::npos);
  auto plain = Open(key, *a, "aad");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->reveal(), "payload");
}

TEST(AeadTest, EmptyPlaintextAndEmptyAad) {
  const SecretBytes key = Key('k');
  auto box = Seal(key, "", "");
  ASSERT_TRUE(box.ok());
  auto plain = Open(key, *box, "");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(plain->empty());
}

TEST(AeadTest, TamperedWrongKeyWrongAadAllRefused) {
  const SecretBytes key = Key('k');
  auto box = Seal(key, "payload", "aad");
  ASSERT_TRUE(box.ok());
  EXPECT_EQ(Open(Key('x'), *box, "aad").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Open(key, *box, "aad2").status().code(), absl::StatusCode::kDataLoss);
  for (size_t i = 0; i < box->ciphertext().size(); ++i) {
    v1::SealedBox t = *box;
    (*t.mutable_ciphertext())[i] ^= 0x01;
    EXPECT_EQ(Open(key, t, "aad").status().code(), absl::StatusCode::kDataLoss) << "byte " << i;
  }
  v1::SealedBox nonce = *box;
  (*nonce.mutable_nonce())[0] ^= 0x80;
  EXPECT_EQ(Open(key, nonce, "aad").status().code(), absl::StatusCode::kDataLoss);
}

TEST(AeadTest, MalformedBoxesAndKeysHaveClearErrors) {
  const SecretBytes key = Key('k');
  auto box = Seal(key, "payload", "aad");
  ASSERT_TRUE(box.ok());
  v1::SealedBox short_nonce = *box;
  short_nonce.set_nonce("123");
  EXPECT_EQ(Open(key, short_nonce, "aad").status().message(),
            "sealed box: nonce of 3 bytes, must be 12");
  v1::SealedBox short_ct = *box;
  short_ct.set_ciphertext("abc");
  EXPECT_EQ(Open(key, short_ct, "aad").status().code(), absl::StatusCode::kDataLoss);
  const SecretBytes short_key(std::string(16, 'k'));
  EXPECT_EQ(Seal(short_key, "x", "").status().message(), "encryption key: 16 bytes, must be 32");
  EXPECT_EQ(Open(short_key, *box, "aad").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AeadTest, AssociatedDataIsUnambiguous) {
  EXPECT_NE(AssociatedData({"ab", "c"}), AssociatedData({"a", "bc"}));
  EXPECT_NE(AssociatedData({"a", ""}), AssociatedData({"a"}));
  EXPECT_EQ(AssociatedData({"a", "b"}), AssociatedData({"a", "b"}));
}

TEST(KeyFileTest, CreateThenReadWithMode0600) {
  TempDir dir;
  const std::string path = (dir.path() / "kek").string();
  auto created = CreateKeyFile(path);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->size(), kAeadKeySize);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto read = ReadKeyFile(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->Equals(*created));
}

TEST(KeyFileTest, CreateRefusesToReplaceAndLoadOrCreateReuses) {
  TempDir dir;
  const std::string path = (dir.path() / "kek").string();
  auto first = LoadOrCreateKeyFile(path);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(CreateKeyFile(path).status().code(), absl::StatusCode::kAlreadyExists);
  auto again = LoadOrCreateKeyFile(path);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->Equals(*first));
}

TEST(KeyFileTest, RefusesGroupOrOtherPermissions) {
  TempDir dir;
  const std::string path = (dir.path() / "kek").string();
  ASSERT_TRUE(CreateKeyFile(path).ok());
  for (mode_t mode : {0640, 0604, 0660, 0644}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto read = ReadKeyFile(path);
    EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition) << std::oct << mode;
    EXPECT_NE(read.status().message().find("must be 0600"), std::string::npos) << read.status();
  }
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);  // read-only for the owner is fine
  EXPECT_TRUE(ReadKeyFile(path).ok());
}

TEST(KeyFileTest, RefusesWrongSizeSymlinkDirectoryAndMissing) {
  TempDir dir;
  const std::string path = (dir.path() / "kek").string();
  {
    std::ofstream out(path);
    out << "too short";
  }
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_EQ(ReadKeyFile(path).status().message(),
            "key file " + path + ": 9 bytes, must be exactly 32");

  const std::string real = (dir.path() / "real").string();
  ASSERT_TRUE(CreateKeyFile(real).ok());
  const std::string link = (dir.path() / "link").string();
  std::filesystem::create_symlink(real, link);
  auto via_link = ReadKeyFile(link);
  EXPECT_EQ(via_link.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(via_link.status().message().find("symlink"), std::string::npos);

  EXPECT_EQ(ReadKeyFile(dir.str()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadKeyFile((dir.path() / "none").string()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(KeyFileTest, WriteFileAtomicallyReplacesWithMode) {
  TempDir dir;
  const std::string path = (dir.path() / "f").string();
  ASSERT_TRUE(WriteFileAtomically(path, "one", 0600).ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two", 0644).ok());
  std::ifstream in(path);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "two");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(SecretEnvelopeTest, RoundTripAndValueNotInEnvelope) {
  const SecretBytes cluster_key = Key('c');
  const SecretBytes value(std::string("s3cr3t-database-password"));
  auto env = EncryptSecret(cluster_key, "sec1", "db_password", value);
  ASSERT_TRUE(env.ok()) << env.status();
  const std::string bytes = env->SerializeAsString();
  EXPECT_EQ(bytes.find("s3cr3t"), std::string::npos);
  auto back = DecryptSecret(cluster_key, "sec1", "db_password", *env);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->reveal(), value.reveal());
}

TEST(SecretEnvelopeTest, BoundToIdAndNameAndKey) {
  const SecretBytes cluster_key = Key('c');
  auto env = EncryptSecret(cluster_key, "sec1", "db_password", SecretBytes(std::string("v")));
  ASSERT_TRUE(env.ok());
  // Swapped onto another secret (other id or other name): refused.
  EXPECT_EQ(DecryptSecret(cluster_key, "sec2", "db_password", *env).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecryptSecret(cluster_key, "sec1", "api_key", *env).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecryptSecret(Key('d'), "sec1", "db_password", *env).status().code(),
            absl::StatusCode::kDataLoss);
  // The value re-wrapped under another secret's data key: refused too.
  auto other = EncryptSecret(cluster_key, "sec2", "other", SecretBytes(std::string("w")));
  ASSERT_TRUE(other.ok());
  v1::SecretEnvelope mixed = *env;
  *mixed.mutable_wrapped_data_key() = other->wrapped_data_key();
  EXPECT_EQ(DecryptSecret(cluster_key, "sec1", "db_password", mixed).status().code(),
            absl::StatusCode::kDataLoss);
  v1::SecretEnvelope tampered = *env;
  (*tampered.mutable_value()->mutable_ciphertext())[0] ^= 1;
  auto t = DecryptSecret(cluster_key, "sec1", "db_password", tampered);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(t.status().message().find("secret db_password (sec1): value"), std::string::npos);
}

TEST(SecretEnvelopeTest, ValidatesInputs) {
  const SecretBytes cluster_key = Key('c');
  EXPECT_EQ(EncryptSecret(cluster_key, "", "n", SecretBytes()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncryptSecret(cluster_key, "id", "", SecretBytes()).status().message(),
            "secret name: empty");
  const SecretBytes big(std::string(kMaxSecretSize + 1, 'x'));
  EXPECT_EQ(EncryptSecret(cluster_key, "id", "big", big).status().message(),
            "secret big: value of 512001 bytes, at most 512000 allowed");
  EXPECT_TRUE(
      EncryptSecret(cluster_key, "id", "max", SecretBytes(std::string(kMaxSecretSize, 'x'))).ok());
}

TEST(SecretEnvelopeTest, ErrorsNeverContainTheValue) {
  const SecretBytes cluster_key = Key('c');
  const SecretBytes value(std::string("value-that-must-not-leak"));
  auto env = EncryptSecret(cluster_key, "sec1", "n", value);
  ASSERT_TRUE(env.ok());
  auto wrong = DecryptSecret(Key('z'), "sec1", "n", *env);
  EXPECT_EQ(wrong.status().ToString().find("must-not-leak"), std::string::npos);
}

}  // namespace
}  // namespace warren::security
