// The Secrets API on a manager's pieces (SQLite store in a temp dir, fake clock): validation,
// encryption at rest, removal while used, and the rolling update a new value starts.
#include "manager/secret_service.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "file_bytes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manager/events.h"
#include "manager/manager_api.h"
#include "manager/node_liveness.h"
#include "security/aead.h"
#include "store/sqlite_store.h"
#include "store/typed_store.h"
#include "test_util.h"

namespace warren {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kValue[] = "hunter2-the-secret-value-0123456789";

class SecretServiceTest : public testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteStore::Open((dir_.path() / "store.db").string());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    events_ = std::make_unique<EventLog>(*store_, clock_);
    api_ = std::make_unique<ManagerApi>(*store_, clock_, *events_, liveness_, ApiOptions{});
    auto key = security::NewAeadKey();
    ASSERT_TRUE(key.ok());
    key_ = *key;
    secrets_ = std::make_unique<SecretService>(
        *store_, clock_, *events_,
        [this]() -> absl::StatusOr<security::SecretBytes> {
          if (!have_key_) return absl::FailedPreconditionError("no cluster key");
          return key_;
        },
        [this](const std::string& name, const std::string& cause) -> absl::Status {
          rolled_.push_back(name);
          v1::GetServiceRequest get;
          get.set_name_or_id(name);
          v1::Service current;
          grpc::Status s = api_->control().GetService(nullptr, &get, &current);
          if (!s.ok()) return absl::UnknownError(s.error_message());
          v1::UpdateServiceRequest req;
          *req.mutable_spec() = current.spec();
          req.set_change_cause(cause);
          v1::Service out;
          s = api_->control().UpdateService(nullptr, &req, &out);
          return s.ok() ? absl::OkStatus() : absl::UnknownError(s.error_message());
        });
  }

  grpc::Status Create(const std::string& name, const std::string& value, v1::Secret* out) {
    v1::CreateSecretRequest req;
    req.set_name(name);
    req.set_value(value);
    return secrets_->CreateSecret(nullptr, &req, out);
  }
  grpc::Status CreateService(const std::string& name, const std::string& secret,
                             const std::string& target = "", uint32_t mode = 0) {
    v1::CreateServiceRequest req;
    req.mutable_spec()->set_name(name);
    req.mutable_spec()->set_replicas(1);
    req.mutable_spec()->mutable_template_()->set_command("app");
    v1::SecretReference* ref = req.mutable_spec()->mutable_template_()->add_secrets();
    ref->set_name(secret);
    ref->set_target(target);
    ref->set_mode(mode);
    v1::Service out;
    return api_->control().CreateService(nullptr, &req, &out);
  }
  grpc::Status Remove(const std::string& name) {
    v1::RemoveSecretRequest req;
    req.set_secret(name);
    v1::RemoveSecretResponse out;
    return secrets_->RemoveSecret(nullptr, &req, &out);
  }
  std::string StoreBytes() { return testing_util::BytesUnder(dir_.path()); }

  testing_util::TempDir dir_;
  FakeClock clock_;
  NodeLiveness liveness_{clock_};
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<ManagerApi> api_;
  security::SecretBytes key_;
  bool have_key_ = true;
  std::vector<std::string> rolled_;
  std::unique_ptr<SecretService> secrets_;
};

TEST_F(SecretServiceTest, CreateStoresOnlyTheEnvelopeAndAnswersMetadata) {
  v1::Secret created;
  ASSERT_TRUE(Create("db-password", kValue, &created).ok());
  EXPECT_FALSE(created.has_envelope());
  EXPECT_EQ(created.secret_version(), 1u);
  EXPECT_EQ(created.size(), sizeof(kValue) - 1);

  auto stored = GetObjectByName<v1::Secret>(*store_, "db-password");
  ASSERT_TRUE(stored.has_value());
  ASSERT_TRUE(stored->has_envelope());
  auto opened = OpenSecret(key_, *stored);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->reveal(), kValue);
  EXPECT_THAT(stored->DebugString(), Not(HasSubstr(kValue)));

  v1::InspectSecretRequest inspect;
  inspect.set_secret("db-password");
  v1::Secret shown;
  ASSERT_TRUE(secrets_->InspectSecret(nullptr, &inspect, &shown).ok());
  EXPECT_FALSE(shown.has_envelope());
  v1::ListSecretsResponse list;
  ASSERT_TRUE(secrets_->ListSecrets(nullptr, nullptr, &list).ok());
  ASSERT_EQ(list.secrets_size(), 1);
  EXPECT_FALSE(list.secrets(0).has_envelope());

  store_.reset();  // flushes the WAL into the file
  EXPECT_EQ(StoreBytes().find(kValue), std::string::npos);
}

TEST_F(SecretServiceTest, BadInputIsRefusedNamingTheFieldAndStoresNothing) {
  v1::Secret out;
  grpc::Status s = Create("Bad_Name", kValue, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("name: "));
  s = Create("empty", "", &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("value: "));
  s = Create("big", std::string(500 * 1024 + 1, 'x'), &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("at most 512000 bytes"));
  EXPECT_TRUE(Create("max", std::string(500 * 1024, 'x'), &out).ok());
  EXPECT_EQ(Create("max", kValue, &out).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  have_key_ = false;
  s = Create("nokey", kValue, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), Not(HasSubstr(kValue)));
  EXPECT_EQ(ListObjects<v1::Secret>(*store_).size(), 1u);
}

TEST_F(SecretServiceTest, ServiceReferencesAreCheckedAndNothingStoredOnError) {
  v1::Secret out;
  ASSERT_TRUE(Create("token", kValue, &out).ok());
  grpc::Status s = CreateService("web", "nope");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("template.secrets[0].name: no secret \"nope\""));
  s = CreateService("web", "token", "a/b");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("template.secrets[0].target"));
  s = CreateService("web", "token", "", 0600);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("template.secrets[0].mode"));
  EXPECT_TRUE(ListObjects<v1::Service>(*store_).empty());

  ASSERT_TRUE(CreateService("web", "token").ok());
  auto svc = GetObjectByName<v1::Service>(*store_, "web");
  ASSERT_TRUE(svc.has_value());
  const v1::SecretReference& ref = svc->spec().template_().secrets(0);
  EXPECT_EQ(ref.target(), "token");
  EXPECT_EQ(ref.mode(), 0400u);
  EXPECT_EQ(ref.secret_version(), 1u);
}

TEST_F(SecretServiceTest, RemoveIsRefusedWhileAServiceUsesIt) {
  v1::Secret out;
  ASSERT_TRUE(Create("token", kValue, &out).ok());
  ASSERT_TRUE(CreateService("web", "token").ok());
  ASSERT_TRUE(CreateService("api", "token", "t2").ok());
  grpc::Status s = Remove("token");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("used by services api, web"));
  EXPECT_TRUE(GetObjectByName<v1::Secret>(*store_, "token").has_value());

  for (const char* name : {"web", "api"}) {
    v1::DeleteServiceRequest del;
    del.set_name_or_id(name);
    v1::DeleteServiceResponse resp;
    ASSERT_TRUE(api_->control().DeleteService(nullptr, &del, &resp).ok());
  }
  EXPECT_TRUE(Remove("token").ok());
  EXPECT_FALSE(GetObjectByName<v1::Secret>(*store_, "token").has_value());
  EXPECT_EQ(Remove("token").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SecretServiceTest, UpdateBumpsTheVersionAndRollsTheServicesThatUseIt) {
  v1::Secret out;
  ASSERT_TRUE(Create("token", kValue, &out).ok());
  ASSERT_TRUE(Create("other", kValue, &out).ok());
  ASSERT_TRUE(CreateService("web", "token").ok());
  ASSERT_TRUE(CreateService("unrelated", "other").ok());

  v1::UpdateSecretRequest req;
  req.set_secret("token");
  req.set_value("the-new-value");
  v1::Secret updated;
  grpc::Status s = secrets_->UpdateSecret(nullptr, &req, &updated);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(updated.secret_version(), 2u);
  EXPECT_FALSE(updated.has_envelope());
  EXPECT_THAT(rolled_, testing::ElementsAre("web"));

  auto svc = GetObjectByName<v1::Service>(*store_, "web");
  ASSERT_TRUE(svc.has_value());
  EXPECT_EQ(svc->revision(), 2);
  EXPECT_EQ(svc->spec().template_().secrets(0).secret_version(), 2u);
  EXPECT_EQ(GetObjectByName<v1::Service>(*store_, "unrelated")->revision(), 1);

  auto stored = GetObjectByName<v1::Secret>(*store_, "token");
  auto opened = OpenSecret(key_, *stored);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->reveal(), "the-new-value");
  for (const v1::Event& e : ListObjects<v1::Event>(*store_)) {
    EXPECT_THAT(e.DebugString(), Not(HasSubstr("the-new-value")));
    EXPECT_THAT(e.DebugString(), Not(HasSubstr(kValue)));
  }
}

TEST_F(SecretServiceTest, AnEnvelopeMovedToAnotherSecretDoesNotOpen) {
  v1::Secret out;
  ASSERT_TRUE(Create("a", kValue, &out).ok());
  ASSERT_TRUE(Create("b", "other", &out).ok());
  auto a = GetObjectByName<v1::Secret>(*store_, "a");
  auto b = GetObjectByName<v1::Secret>(*store_, "b");
  *b->mutable_envelope() = a->envelope();
  EXPECT_EQ(OpenSecret(key_, *b).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SecretServiceTest, AssignmentsCarryOnlyTheSecretsOfTheirTasks) {
  v1::Secret out;
  ASSERT_TRUE(Create("token", kValue, &out).ok());
  ASSERT_TRUE(Create("other", "not-for-this-node", &out).ok());
  ClusterKeyFn key = [this]() -> absl::StatusOr<security::SecretBytes> { return key_; };

  v1::Assignments none;
  none.add_tasks()->set_id("t0");
  AddSecretValues(*store_, key, &none);
  EXPECT_EQ(none.secrets_size(), 0);

  v1::Assignments a;
  for (const char* id : {"t1", "t2"}) {
    v1::Task* t = a.add_tasks();
    t->set_id(id);
    t->mutable_spec()->add_secrets()->set_name("token");
  }
  AddSecretValues(*store_, key, &a);
  ASSERT_EQ(a.secrets_size(), 1);
  EXPECT_EQ(a.secrets(0).name(), "token");
  EXPECT_EQ(a.secrets(0).value(), kValue);
  EXPECT_EQ(a.secrets(0).secret_version(), 1u);

  // No key: the value is left out rather than sent or guessed.
  v1::Assignments nokey;
  nokey.add_tasks()->mutable_spec()->add_secrets()->set_name("token");
  AddSecretValues(
      *store_,
      [] { return absl::StatusOr<security::SecretBytes>(absl::FailedPreconditionError("no key")); },
      &nokey);
  EXPECT_EQ(nokey.secrets_size(), 0);
}

}  // namespace
}  // namespace warren
