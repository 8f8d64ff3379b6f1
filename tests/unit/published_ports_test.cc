// Published-port conflicts between services (issue 11 D3), checked before any is stored.
#include "common/published_ports.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

v1::Service Svc(const std::string& name, int published, const std::string& host = "",
                int target = 9000) {
  v1::Service s;
  s.set_id(name + "-id");
  s.mutable_spec()->set_name(name);
  s.mutable_spec()->mutable_template_()->set_command("app");
  v1::Port* p = s.mutable_spec()->mutable_template_()->add_ports();
  p->set_target(target);
  p->set_published(published);
  p->set_host_ip(host);
  return s;
}

TEST(PublishedPortsTest, SamePortOnOverlappingAddressesConflicts) {
  const std::vector<v1::Service> others = {Svc("web", 8000)};
  absl::Status s = CheckPortConflicts(Svc("api", 8000).spec(), others);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("template.ports[0].published: port 8000"));
  EXPECT_THAT(s.message(), HasSubstr("already published by service \"web\""));
  // 0.0.0.0 covers any one address, both ways round.
  EXPECT_FALSE(CheckPortConflicts(Svc("api", 8000, "127.0.0.1").spec(), others).ok());
  EXPECT_FALSE(CheckPortConflicts(Svc("api", 8000).spec(), {Svc("web", 8000, "127.0.0.1")}).ok());
  EXPECT_FALSE(
      CheckPortConflicts(Svc("api", 8000, "127.0.0.1").spec(), {Svc("web", 8000, "127.0.0.1")})
          .ok());
}

TEST(PublishedPortsTest, DifferentPortsOrAddressesAndTheServiceItselfAreFine) {
  EXPECT_TRUE(CheckPortConflicts(Svc("api", 8001).spec(), {Svc("web", 8000)}).ok());
  EXPECT_TRUE(
      CheckPortConflicts(Svc("api", 8000, "127.0.0.2").spec(), {Svc("web", 8000, "127.0.0.3")})
          .ok());
  // An update of web itself.
  EXPECT_TRUE(CheckPortConflicts(Svc("web", 8000).spec(), {Svc("web", 8000)}).ok());
}

TEST(PublishedPortsTest, PreviewPortCountsAsPublished) {
  v1::Service bg = Svc("bg", 8000);
  bg.mutable_spec()->mutable_update_config()->set_preview_published_port(8100);
  absl::Status s = CheckPortConflicts(Svc("api", 8100).spec(), {bg});
  EXPECT_THAT(s.message(), HasSubstr("updateConfig.previewPublishedPort"));
  v1::Service api = Svc("api", 8200);
  api.mutable_spec()->mutable_update_config()->set_preview_published_port(8000);
  s = CheckPortConflicts(api.spec(), {bg});
  EXPECT_THAT(s.message(), HasSubstr("updateConfig.previewPublishedPort: port 8000"));
}

// Process tasks listen on loopback addresses of the node, which 0.0.0.0 covers.
TEST(PublishedPortsTest, PortPublishedOnEveryAddressMustNotBeAProcessTaskPort) {
  // api's tasks listen on 9000 (its target); web publishes 9000 on every address.
  absl::Status s = CheckPortConflicts(Svc("web", 9000, "", 7000).spec(), {Svc("api", 8000)});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("template.ports[0].published: port 9000 is the port the "
                                     "tasks of service \"api\" listen on"));
  // The other way round: the new service's tasks would listen on a published port.
  s = CheckPortConflicts(Svc("api", 8000).spec(), {Svc("web", 9000, "", 7000)});
  EXPECT_THAT(s.message(), HasSubstr("template.ports[0].target: the tasks would listen on port "
                                     "9000, which service \"web\" publishes"));
  // A service without ports listens on the default 8080.
  v1::Service worker;
  worker.mutable_spec()->set_name("worker");
  worker.mutable_spec()->mutable_template_()->set_command("app");
  s = CheckPortConflicts(worker.spec(), {Svc("web", 8080)});
  EXPECT_THAT(s.message(), HasSubstr("template.ports: the tasks would listen on port 8080"));
  // Published on an address of its own, or served by containers (own network): no overlap.
  EXPECT_TRUE(
      CheckPortConflicts(Svc("web", 9000, "192.0.2.1", 7000).spec(), {Svc("api", 8000)}).ok());
  v1::Service image = Svc("api", 8000);
  image.mutable_spec()->mutable_template_()->clear_command();
  image.mutable_spec()->mutable_template_()->set_image("example/api:1");
  EXPECT_TRUE(CheckPortConflicts(Svc("web", 9000, "", 7000).spec(), {image}).ok());
}

// Issue 11 D4: `--publish 8080` on the process runtime published 8080 on every address, where
// the task itself listens: it crash-looped. Rejected with a port to use instead.
TEST(PublishedPortsTest, ProcessServiceCannotPublishItsOwnTargetOnEveryAddress) {
  absl::Status s = CheckOwnPorts(Svc("web", 8080, "", 8080).spec());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("template.ports[0].published: port 8080 is also the port the "
                                     "service's tasks listen on (template.ports[0].target)"));
  EXPECT_THAT(s.message(), HasSubstr("--publish 18080:8080"));
  EXPECT_EQ(CheckPortConflicts(Svc("web", 8080, "", 8080).spec(), {}), s);
  // Another target of the service.
  v1::Service two = Svc("web", 9000, "", 8080);
  v1::Port* p = two.mutable_spec()->mutable_template_()->add_ports();
  p->set_target(9000);
  EXPECT_THAT(CheckOwnPorts(two.spec()).message(), HasSubstr("(template.ports[1].target)"));
  // Fine: another published port, an address of its own, or a container (its own network).
  EXPECT_TRUE(CheckOwnPorts(Svc("web", 18080, "", 8080).spec()).ok());
  EXPECT_TRUE(CheckOwnPorts(Svc("web", 8080, "127.0.0.1", 8080).spec()).ok());
  v1::Service image = Svc("web", 8080, "", 8080);
  image.mutable_spec()->mutable_template_()->clear_command();
  image.mutable_spec()->mutable_template_()->set_image("example/web:1");
  EXPECT_TRUE(CheckOwnPorts(image.spec()).ok());
  // Near the top of the port range the suggestion goes down.
  EXPECT_THAT(CheckOwnPorts(Svc("web", 60000, "", 60000).spec()).message(),
              HasSubstr("--publish 50000:60000"));
}

}  // namespace
}  // namespace warren
