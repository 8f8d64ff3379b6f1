#include "store/etcd_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"
#include "store/store_common.h"
#include "warren/store/etcd.pb.h"

namespace warren {
namespace {

// What the caller of a commit that etcd did not take reads (the API returns it as is).
absl::Status CommitFailed(const absl::Status& s) {
  if (s.code() != absl::StatusCode::kUnavailable) return s;
  absl::Status out = absl::UnavailableError(absl::StrCat(
      "etcd cannot take writes now (", s.message(),
      "): a write needs a majority of the etcd members up and connected (warren cluster "
      "status shows them)",
      EtcdOutcomeUnknown(s) ? "; this change may still be applied once etcd has a majority again"
                            : ""));
  if (auto payload = s.GetPayload(kEtcdOutcomeUnknown))
    out.SetPayload(kEtcdOutcomeUnknown, *payload);
  return out;
}

using etcdserverpb::Compare;

Compare* AddCompare(etcdserverpb::TxnRequest& txn, const std::string& key,
                    Compare::CompareTarget target) {
  Compare* c = txn.add_compare();
  c->set_key(key);
  c->set_target(target);
  c->set_result(Compare::EQUAL);
  return c;
}

void AddRange(google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>* ops,
              const std::string& key) {
  ops->Add()->mutable_request_range()->set_key(key);
}

// This Abseil build has a string_view of its own.
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Printable(std::string_view key) { return absl::CHexEscape(Absl(key)); }

}  // namespace

// The state one commit attempt validates against: the mirror, overridden by what etcd returned
// for keys an earlier attempt found changed, plus the effects of the mutations validated so
// far. Every key a lookup reads is recorded with what it held; the transaction compares them
// all, so a decision taken on stale state can never apply. The caller holds mu_ (shared).
class EtcdStore::CommitView : public MutationView {
 public:
  CommitView(const EtcdStore& store, const std::map<std::string, Observed>& fresh)
      : store_(store), fresh_(fresh) {}

  const CorruptObject* FindCorrupt(Kind kind, const std::string& id) const override {
    if (request_objects_.contains({kind, id})) return nullptr;
    const Decoded& d = BaseObject(kind, id);
    return d.corrupt ? &*d.corrupt : nullptr;
  }

  const CorruptObject* FindCorruptName(Kind kind, const std::string& name) const override {
    const std::string* holder = BaseNameHolder(kind, name);
    if (holder == nullptr || request_objects_.contains({kind, *holder})) return nullptr;
    const Decoded& d = BaseObject(kind, *holder);
    return d.corrupt ? &*d.corrupt : nullptr;
  }

  const StoredObject* Find(Kind kind, const std::string& id) const override {
    auto it = request_objects_.find({kind, id});
    if (it != request_objects_.end()) return it->second ? &*it->second : nullptr;
    const Decoded& d = BaseObject(kind, id);
    return d.object ? &*d.object : nullptr;
  }

  const std::string* FindName(Kind kind, const std::string& name) const override {
    auto it = request_names_.find({kind, name});
    if (it != request_names_.end()) return it->second ? &*it->second : nullptr;
    const std::string* holder = BaseNameHolder(kind, name);
    if (holder == nullptr) return nullptr;
    // A name key whose object does not carry the name (left by a corrupt object) holds nothing.
    const Decoded& d = BaseObject(kind, *holder);
    return d.object && d.object->name == name ? &d.object->id : nullptr;
  }

  void Put(StoredObject obj) override {
    std::pair<Kind, std::string> key{obj.kind, obj.id};
    request_objects_[key] = std::move(obj);
  }
  void Erase(Kind kind, const std::string& id) override {
    request_objects_[{kind, id}] = std::nullopt;
  }
  void SetName(Kind kind, const std::string& name, std::optional<std::string> id) override {
    request_names_[{kind, name}] = std::move(id);
  }

  // The object at (kind, id) before this commit; recorded as read.
  const Decoded& BaseObject(Kind kind, const std::string& id) const {
    std::string key = store_.ObjectKey(kind, id);
    auto cached = objects_.find(key);
    if (cached != objects_.end()) return cached->second;
    Decoded d;
    d.kind = kind;
    d.id = id;
    Observed seen;
    if (auto f = fresh_.find(key); f != fresh_.end()) {
      seen = f->second;
      if (seen.exists) d = store_.Decode(key, seen.value, seen.mod_revision);
    } else {
      store_.mu_.AssertReaderHeld();
      auto kit = store_.kinds_.find(kind);
      const StoredObject* obj = nullptr;
      if (kit != store_.kinds_.end()) {
        auto it = kit->second.by_id.find(id);
        if (it != kit->second.by_id.end()) obj = &it->second;
      }
      auto cit = store_.corrupt_.find(CorruptKey{kind, id});
      if (obj != nullptr) {
        d.object = *obj;
        seen = Observed{true, static_cast<int64_t>(obj->version), ""};
      } else if (cit != store_.corrupt_.end()) {
        d.corrupt = cit->second;
        seen = Observed{true, static_cast<int64_t>(cit->second.version), ""};
      }
    }
    read_.try_emplace(key, seen);
    return objects_.emplace(std::move(key), std::move(d)).first->second;
  }

  // The id a name key names before this commit, or nullptr; recorded as read.
  const std::string* BaseNameHolder(Kind kind, const std::string& name) const {
    std::string key = store_.NameKey(kind, name);
    auto cached = names_.find(key);
    if (cached != names_.end()) return cached->second ? &*cached->second : nullptr;
    Observed seen;
    if (auto f = fresh_.find(key); f != fresh_.end()) {
      seen = f->second;
    } else {
      // The mirror has no name keys; it knows them by the records that hold the names, which
      // are written in the same transactions.
      store_.mu_.AssertReaderHeld();
      auto kit = store_.kinds_.find(kind);
      if (kit != store_.kinds_.end()) {
        auto it = kit->second.id_by_name.find(name);
        if (it != kit->second.id_by_name.end()) seen = Observed{true, 0, it->second};
      }
      if (!seen.exists) {
        for (const auto& [ckey, c] : store_.corrupt_) {
          if (c.kind == kind && c.name == name) seen = Observed{true, 0, c.id};
        }
      }
    }
    read_.try_emplace(key, seen);
    std::optional<std::string> holder;
    if (seen.exists) holder = seen.value;
    auto& slot = names_.emplace(std::move(key), std::move(holder)).first->second;
    return slot ? &*slot : nullptr;
  }

  // Every key read, with what it held.
  const std::map<std::string, Observed>& read() const { return read_; }

 private:
  const EtcdStore& store_;
  const std::map<std::string, Observed>& fresh_;
  mutable std::map<std::string, Decoded> objects_;
  mutable std::map<std::string, std::optional<std::string>> names_;
  mutable std::map<std::string, Observed> read_;
  std::map<std::pair<Kind, std::string>, std::optional<StoredObject>> request_objects_;
  std::map<std::pair<Kind, std::string>, std::optional<std::string>> request_names_;
};

EtcdStore::EtcdStore(std::shared_ptr<EtcdClient> client, EtcdStoreOptions options)
    : client_(std::move(client)), opts_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<EtcdStore>> EtcdStore::Open(std::shared_ptr<EtcdClient> client,
                                                           EtcdStoreOptions options) {
  if (client == nullptr) return absl::InvalidArgumentError("no etcd client");
  if (options.prefix.empty() || options.prefix.back() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd key prefix \"", options.prefix, "\" must end with '/'"));
  }
  if (options.max_txn_ops < 2 || options.max_commit_attempts < 1 || options.page_size < 1) {
    return absl::InvalidArgumentError("etcd store limits must be positive");
  }
  std::unique_ptr<EtcdStore> store(new EtcdStore(std::move(client), std::move(options)));
  if (absl::Status s = store->Load(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("opening the etcd store: ", s.message()));
  }
  store->watch_thread_ = std::thread([raw = store.get()] { raw->WatchLoop(); });
  return store;
}

EtcdStore::~EtcdStore() {
  {
    absl::MutexLock lock(&watch_mu_);
    stopping_ = true;
    if (watch_context_ != nullptr) watch_context_->TryCancel();
  }
  if (watch_thread_.joinable()) watch_thread_.join();
}

std::string EtcdStore::ObjectKey(Kind kind, std::string_view id) const {
  return absl::StrCat(opts_.prefix, "o/", static_cast<int>(kind), "/", Absl(id));
}

std::string EtcdStore::NameKey(Kind kind, std::string_view name) const {
  return absl::StrCat(opts_.prefix, "n/", static_cast<int>(kind), "/", Absl(name));
}

std::optional<std::pair<int, std::string>> EtcdStore::ParseObjectKey(std::string_view key) const {
  std::string head = absl::StrCat(opts_.prefix, "o/");
  if (key.substr(0, head.size()) != head) return std::nullopt;
  key.remove_prefix(head.size());
  size_t slash = key.find('/');
  int kind = 0;
  if (slash == std::string_view::npos || !absl::SimpleAtoi(Absl(key.substr(0, slash)), &kind)) {
    return std::nullopt;
  }
  return std::make_pair(kind, std::string(key.substr(slash + 1)));
}

EtcdStore::Decoded EtcdStore::Decode(std::string_view key, std::string_view value,
                                     int64_t mod_revision) const {
  Decoded d;
  auto parsed = ParseObjectKey(key);
  if (!parsed) {
    // Callers only pass keys of the object range.
    d.corrupt = CorruptObject{Kind::kService, std::string(key), "",
                              static_cast<uint64_t>(mod_revision), "the key is not an object key"};
    return d;
  }
  d.kind = static_cast<Kind>(parsed->first);
  d.id = std::move(parsed->second);
  store::EtcdRecord record;
  std::string reason;
  if (!IsKnownKind(d.kind)) {
    reason = absl::StrCat("kind ", parsed->first, " is not one this binary knows");
  } else if (d.id.empty()) {
    reason = "the id is empty";
  } else if (!record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    reason = "its etcd value is not a Warren record";
  } else if (opts_.parse) {
    absl::StatusOr<ObjectIdentity> identity = opts_.parse(d.kind, record.data());
    if (!identity.ok()) {
      reason = std::string(identity.status().message());
    } else if (identity->id != d.id) {
      reason = absl::StrCat("its data is object \"", identity->id, "\", not \"", d.id, "\"");
    } else if (identity->name != record.name()) {
      reason = absl::StrCat("its data names it \"", identity->name, "\", its record \"",
                            record.name(), "\"");
    }
  }
  const auto version = static_cast<uint64_t>(mod_revision);
  if (!reason.empty()) {
    d.corrupt = CorruptObject{d.kind, d.id, record.name(), version, reason};
    return d;
  }
  d.object = StoredObject{d.kind, d.id, record.name(), version, record.data()};
  return d;
}

void EtcdStore::PutLocked(Decoded d) {
  EraseLocked(d.kind, d.id);
  if (d.corrupt) {
    spdlog::error(
        "etcd store: {} is corrupt: {}; it is left out of reads and writes refuse it until it is "
        "removed",
        DescribeCorrupt(*d.corrupt), d.corrupt->reason);
    corrupt_.emplace(CorruptKey{d.kind, d.id}, std::move(*d.corrupt));
    return;
  }
  KindIndex& ks = kinds_[d.kind];
  if (!d.object->name.empty()) ks.id_by_name[d.object->name] = d.id;
  ks.by_id.insert_or_assign(d.id, std::move(*d.object));
}

void EtcdStore::EraseLocked(Kind kind, const std::string& id) {
  corrupt_.erase(CorruptKey{kind, id});
  auto kit = kinds_.find(kind);
  if (kit == kinds_.end()) return;
  auto it = kit->second.by_id.find(id);
  if (it == kit->second.by_id.end()) return;
  auto nit = kit->second.id_by_name.find(it->second.name);
  if (nit != kit->second.id_by_name.end() && nit->second == id) kit->second.id_by_name.erase(nit);
  kit->second.by_id.erase(it);
}

absl::Status EtcdStore::Load() {
  const std::string begin = absl::StrCat(opts_.prefix, "o/");
  const std::string end = EtcdPrefixEnd(begin);
  std::vector<Decoded> decoded;
  int64_t revision = 0;
  std::string next = begin;
  for (;;) {
    etcdserverpb::RangeRequest req;
    req.set_key(next);
    req.set_range_end(end);
    req.set_limit(opts_.page_size);
    // Every page at the first page's revision: one consistent snapshot.
    req.set_revision(revision);
    auto resp = client_->Range(req);
    if (!resp.ok()) return resp.status();
    if (revision == 0) revision = resp->header().revision();
    for (const auto& kv : resp->kvs()) {
      if (!ParseObjectKey(kv.key())) {
        spdlog::warn("etcd store: ignoring key {}: not an object key", Printable(kv.key()));
        continue;
      }
      decoded.push_back(Decode(kv.key(), kv.value(), kv.mod_revision()));
    }
    if (!resp->more() || resp->kvs().empty()) break;
    next = resp->kvs().rbegin()->key() + std::string(1, '\0');
  }
  absl::MutexLock lock(&mu_);
  kinds_.clear();
  corrupt_.clear();
  for (Decoded& d : decoded) PutLocked(std::move(d));
  version_ = std::max<uint64_t>(version_, static_cast<uint64_t>(revision));
  changes_.clear();
  changes_bytes_ = 0;
  compacted_through_ = version_;
  if (!corrupt_.empty()) {
    spdlog::error(
        "etcd store: {} corrupt object(s); /readyz reports not ready until they are removed",
        corrupt_.size());
  }
  return absl::OkStatus();
}

void EtcdStore::WatchLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  auto idle = [this](absl::Duration d) {
    absl::MutexLock lock(&watch_mu_);
    auto stop = [this] {
      watch_mu_.AssertHeld();
      return stopping_;
    };
    watch_mu_.AwaitWithTimeout(absl::Condition(&stop), d);
  };
  for (;;) {
    {
      absl::MutexLock lock(&watch_mu_);
      auto runnable = [this] {
        watch_mu_.AssertHeld();
        return stopping_ || !paused_;
      };
      watch_mu_.Await(absl::Condition(&runnable));
      if (stopping_) return;
    }
    auto ws = client_->OpenWatch();
    if (!ws.ok()) {
      spdlog::warn("etcd store: watch: {}; retrying", ws.status().ToString());
      idle(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      continue;
    }
    {
      absl::MutexLock lock(&watch_mu_);
      if (stopping_ || paused_) {
        ws->context->TryCancel();
      } else {
        watch_context_ = ws->context.get();
      }
    }
    etcdserverpb::WatchRequest req;
    auto* create = req.mutable_create_request();
    create->set_key(absl::StrCat(opts_.prefix, "o/"));
    create->set_range_end(EtcdPrefixEnd(create->key()));
    create->set_start_revision(static_cast<int64_t>(Version()) + 1);
    etcdserverpb::WatchResponse resp;
    bool reload = false;
    if (ws->stream->Write(req)) {
      while (ws->stream->Read(&resp)) {
        if (resp.compact_revision() > 0) {
          spdlog::warn(
              "etcd store: the watch fell behind etcd's compaction (history before revision {} "
              "is gone); reloading every object, watchers relist",
              resp.compact_revision());
          reload = true;
          break;
        }
        if (resp.canceled()) {
          spdlog::warn("etcd store: etcd {} cancelled the watch: {}", ws->endpoint,
                       resp.cancel_reason());
          break;
        }
        if (resp.events_size() > 0) {
          ApplyEvents(resp);
          backoff = absl::Milliseconds(100);
        }
      }
    }
    ws->context->TryCancel();
    grpc::Status status = ws->stream->Finish();
    {
      absl::MutexLock lock(&watch_mu_);
      watch_context_ = nullptr;
      if (stopping_) return;
      if (paused_) continue;
    }
    if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      spdlog::warn("etcd store: watch on {} ended: {}; reconnecting", ws->endpoint,
                   status.error_message());
      client_->ReportFailure(ws->endpoint);
    }
    // Reloads until one succeeds: the mirror must not resume from a revision etcd no longer has.
    while (reload) {
      absl::Status s = Load();
      if (s.ok()) break;
      spdlog::warn("etcd store: reload: {}; retrying", s.ToString());
      idle(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      absl::MutexLock lock(&watch_mu_);
      if (stopping_) return;
    }
    if (!reload) idle(backoff);
  }
}

void EtcdStore::ApplyEvents(const etcdserverpb::WatchResponse& resp) {
  absl::MutexLock lock(&mu_);
  const uint64_t applied = version_;
  for (const auto& ev : resp.events()) {
    const auto revision = static_cast<uint64_t>(ev.kv().mod_revision());
    if (revision <= applied) continue;
    auto parsed = ParseObjectKey(ev.kv().key());
    if (!parsed) {
      spdlog::warn("etcd store: ignoring a change of key {}: not an object key",
                   Printable(ev.kv().key()));
      continue;
    }
    const Kind kind = static_cast<Kind>(parsed->first);
    Change c{revision, kind, parsed->second, true, ""};
    if (ev.type() == mvccpb::Event::DELETE) {
      EraseLocked(kind, parsed->second);
    } else {
      Decoded d = Decode(ev.kv().key(), ev.kv().value(), ev.kv().mod_revision());
      // To a watcher, an object that turned corrupt is gone: it is left out of reads too.
      if (d.object) {
        c.deleted = false;
        c.data = d.object->data;
      }
      PutLocked(std::move(d));
    }
    changes_bytes_ += c.data.size();
    changes_.push_back(std::move(c));
    version_ = std::max(version_, revision);
  }
  Trim();
}

void EtcdStore::Trim() {
  while (changes_.size() > opts_.max_changes || changes_bytes_ > opts_.max_change_bytes) {
    const uint64_t v = changes_.front().version;
    // The newest revision stays whole even when it alone is larger than the retention.
    if (v == changes_.back().version) break;
    DropThrough(v);
  }
}

void EtcdStore::DropThrough(uint64_t through) {
  while (!changes_.empty() && changes_.front().version <= through) {
    changes_bytes_ -= changes_.front().data.size();
    changes_.pop_front();
  }
  compacted_through_ = std::max(compacted_through_, through);
}

absl::StatusOr<uint64_t> EtcdStore::Commit(const std::vector<Mutation>& mutations) {
  return CommitImpl(mutations, nullptr);
}

absl::StatusOr<uint64_t> EtcdStore::CommitFenced(const std::vector<Mutation>& mutations,
                                                 const EtcdFence& fence) {
  if (fence.key.empty() || fence.create_revision <= 0) {
    return absl::InvalidArgumentError("a fenced commit needs a leader key and its revision");
  }
  return CommitImpl(mutations, &fence);
}

absl::Status EtcdStore::CheckLimits(const etcdserverpb::TxnRequest& txn, size_t mutations) const {
  const size_t ops =
      static_cast<size_t>(std::max({txn.compare_size(), txn.success_size(), txn.failure_size()}));
  if (ops > opts_.max_txn_ops) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a commit of %d mutations needs %d operations in one etcd transaction (objects and "
        "their unique names), more than etcd allows (%d, its --max-txn-ops); split the change "
        "into smaller ones",
        mutations, ops, opts_.max_txn_ops));
  }
  if (txn.ByteSizeLong() > opts_.max_request_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a commit of %d mutations is %d bytes, more than etcd accepts in one request (%d bytes, "
        "its --max-request-bytes); make the objects smaller or split the change",
        mutations, txn.ByteSizeLong(), opts_.max_request_bytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> EtcdStore::CommitImpl(const std::vector<Mutation>& mutations,
                                               const EtcdFence* fence) {
  if (absl::Status s = CheckMutationShape(mutations); !s.ok()) return s;
  // What etcd returned for keys that had moved under an earlier attempt.
  std::map<std::string, Observed> fresh;
  for (int attempt = 0; attempt < opts_.max_commit_attempts; ++attempt) {
    etcdserverpb::TxnRequest txn;
    std::vector<std::string> read_keys;
    absl::Status verdict;
    {
      absl::ReaderMutexLock lock(&mu_);
      CommitView view(*this, fresh);
      // The version is known only once etcd applies the transaction; it is not in the data.
      verdict = ValidateMutations(mutations, 0, nullptr, view);
      if (verdict.ok()) {
        std::map<std::string, std::optional<std::string>> names;
        for (const Mutation& m : mutations) {
          const Decoded& base = view.BaseObject(m.kind, m.id);
          const std::string old_name = base.object    ? base.object->name
                                       : base.corrupt ? base.corrupt->name
                                                      : "";
          const std::string new_name = m.data ? m.name : "";
          if (!old_name.empty() && old_name != new_name) {
            const std::string* holder = view.BaseNameHolder(m.kind, old_name);
            if (holder != nullptr && *holder == m.id) {
              names.try_emplace(NameKey(m.kind, old_name), std::nullopt);
            }
          }
          const std::string key = ObjectKey(m.kind, m.id);
          if (m.data) {
            store::EtcdRecord record;
            record.set_name(m.name);
            record.set_data(*m.data);
            auto* put = txn.add_success()->mutable_request_put();
            put->set_key(key);
            record.SerializeToString(put->mutable_value());
          } else {
            txn.add_success()->mutable_request_delete_range()->set_key(key);
          }
        }
        for (const Mutation& m : mutations) {
          if (!m.data || m.name.empty()) continue;
          const std::string* holder = view.BaseNameHolder(m.kind, m.name);
          std::string key = NameKey(m.kind, m.name);
          if (holder != nullptr && *holder == m.id) {
            names.erase(key);
          } else {
            names[key] = m.id;
          }
        }
        for (const auto& [key, holder] : names) {
          if (holder) {
            auto* put = txn.add_success()->mutable_request_put();
            put->set_key(key);
            put->set_value(*holder);
          } else {
            txn.add_success()->mutable_request_delete_range()->set_key(key);
          }
        }
      }
      for (const auto& [key, seen] : view.read()) {
        if (!seen.exists) {
          AddCompare(txn, key, Compare::CREATE)->set_create_revision(0);
        } else if (seen.mod_revision > 0) {
          AddCompare(txn, key, Compare::MOD)->set_mod_revision(seen.mod_revision);
        } else {
          AddCompare(txn, key, Compare::VALUE)->set_value(seen.value);
        }
        AddRange(txn.mutable_failure(), key);
        read_keys.push_back(key);
      }
    }
    if (fence != nullptr) {
      AddCompare(txn, fence->key, Compare::CREATE)->set_create_revision(fence->create_revision);
      AddRange(txn.mutable_failure(), fence->key);
    }
    // A refused commit is sent too, with nothing to apply: etcd confirms that what it was
    // refused on is still current.
    if (absl::Status s = CheckLimits(txn, mutations.size()); !s.ok()) return s;
    auto resp = client_->Txn(txn);
    if (!resp.ok()) return CommitFailed(resp.status());
    if (resp->succeeded()) {
      if (!verdict.ok()) return verdict;
      const auto version = static_cast<uint64_t>(resp->header().revision());
      if (WaitForVersion(version - 1, opts_.read_your_writes_timeout) < version) {
        spdlog::warn("etcd store: commit {} is in etcd but the watch has not delivered it yet",
                     version);
      }
      return version;
    }
    if (fence != nullptr) {
      const auto& r = resp->responses(resp->responses_size() - 1).response_range();
      if (r.kvs().empty() || r.kvs(0).create_revision() != fence->create_revision) {
        return absl::AbortedError(absl::StrCat(
            "not the leader any more: leader key ", fence->key, " ",
            r.kvs().empty()
                ? std::string("is gone")
                : absl::StrCat("was created again at revision ", r.kvs(0).create_revision()),
            " (this manager led from revision ", fence->create_revision,
            "); the write is rejected"));
      }
    }
    for (size_t i = 0; i < read_keys.size(); ++i) {
      const auto& r = resp->responses(static_cast<int>(i)).response_range();
      Observed seen;
      if (!r.kvs().empty()) seen = Observed{true, r.kvs(0).mod_revision(), r.kvs(0).value()};
      fresh[read_keys[i]] = std::move(seen);
    }
  }
  return absl::AbortedError(absl::StrCat("the commit lost ", opts_.max_commit_attempts,
                                         " races for the same objects in etcd; try again"));
}

std::optional<StoredObject> EtcdStore::Get(Kind kind, std::string_view id) const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexGet(kinds_, kind, id);
}

std::optional<StoredObject> EtcdStore::GetByName(Kind kind, std::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexGetByName(kinds_, kind, name);
}

std::vector<StoredObject> EtcdStore::List(Kind kind) const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexList(kinds_, kind);
}

std::vector<ObjectVersion> EtcdStore::ListVersions(Kind kind) const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexListVersions(kinds_, kind);
}

uint64_t EtcdStore::Version() const {
  absl::ReaderMutexLock lock(&mu_);
  return version_;
}

uint64_t EtcdStore::CompactedThrough() const {
  absl::ReaderMutexLock lock(&mu_);
  return compacted_through_;
}

absl::StatusOr<std::vector<Change>> EtcdStore::ChangesSince(uint64_t after, size_t limit) const {
  absl::ReaderMutexLock lock(&mu_);
  return FeedPage(changes_, compacted_through_, after, limit);
}

uint64_t EtcdStore::WaitForVersion(uint64_t after, absl::Duration timeout) const {
  return AwaitVersion(mu_, version_, after, timeout);
}

std::vector<CorruptObject> EtcdStore::Corruption() const {
  absl::ReaderMutexLock lock(&mu_);
  return IndexCorruption(corrupt_);
}

absl::Status EtcdStore::Compact(uint64_t revision) {
  if (absl::Status s = client_->Compact(static_cast<int64_t>(revision)); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  // History before `revision` is gone: a watch may still start at `revision` itself.
  DropThrough(revision - 1);
  return absl::OkStatus();
}

void EtcdStore::PauseWatchForTest(bool paused) {
  absl::MutexLock lock(&watch_mu_);
  paused_ = paused;
  if (paused && watch_context_ != nullptr) watch_context_->TryCancel();
}

absl::StatusOr<uint64_t> EtcdFencedStore::Commit(const std::vector<Mutation>& mutations) {
  std::optional<EtcdFence> fence = current_fence_();
  if (!fence) {
    return absl::AbortedError("not the leader: controller writes are rejected");
  }
  return store_.CommitFenced(mutations, *fence);
}

}  // namespace warren
