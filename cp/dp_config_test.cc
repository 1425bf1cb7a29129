#include "cp/dp_config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace cygnet::cfg {
namespace {

// A minimal valid config; the lan port is on line 3, the wan port on line
// 4, `extra` on line 7 and `top` on line 9, so tests know where errors are.
const std::string kLan = R"(name = "lan"; side = "protected"; device = "net_tap0"; addresses = [ "10.1.0.1/24" ];)";
const std::string kWan = R"(name = "wan"; side = "unprotected"; device = "net_tap1"; addresses = [ "192.0.2.1/24" ];)";

std::string dp(const std::string& lan = kLan, const std::string& wan = kWan, const std::string& extra = "",
               const std::string& top = "", const std::string& cores = "cores = { main = 0; workers = [ 1 ]; };") {
  return "dataplane = {\n"
         "  ports = (\n"
         "    { " + lan + " },\n"
         "    { " + wan + " }\n"
         "  );\n"
         "  " + cores + "\n"
         "  " + extra + "\n"
         "};\n" +
         top + "\n";
}

std::string sub(std::string s, const std::string& from, const std::string& to) {
  auto i = s.find(from);
  EXPECT_NE(i, std::string::npos) << from << " not in " << s;
  if (i != std::string::npos) s.replace(i, from.size(), to);
  return s;
}

std::string load_error(const std::string& text) {
  auto r = load_dp_string(text, "t.conf");
  return r.ok() ? "<ok>" : r.error().message;
}

MacAddress mac(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint8_t e, std::uint8_t f) {
  return MacAddress{a, b, c, d, e, f};
}

IpAddress ip(const char* s) { return IpAddress::parse(s).value(); }

std::string all(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "\n  " + s;
  return out;
}

TEST(DpConfig, MinimalConfigGetsTheDefaults) {
  auto r = load_dp_string(dp(), "t.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const DpConfig& c = *r;
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_EQ(c.ports[0].name, "lan");
  EXPECT_EQ(c.ports[0].side, PortConfig::Side::protected_);
  EXPECT_EQ(c.ports[1].side, PortConfig::Side::unprotected);
  EXPECT_EQ(c.ports[0].mtu, 1500);
  EXPECT_FALSE(c.ports[0].mac.has_value());
  EXPECT_TRUE(c.routes.empty());
  EXPECT_TRUE(c.neighbours.empty());
  EXPECT_EQ(c.main_core, 0u);
  EXPECT_EQ(c.worker_cores, std::vector<unsigned>{1});
  EXPECT_EQ(c.mbufs, 16383u);
  EXPECT_EQ(c.mbuf_cache, 256u);
  EXPECT_EQ(c.rx_ring, 1024u);
  EXPECT_EQ(c.tx_ring, 1024u);
  EXPECT_EQ(c.handoff_ring, 1024u);
  EXPECT_EQ(c.flow_cache_entries, 65536u);
  EXPECT_EQ(c.max_sas, 1u << 20);
  EXPECT_EQ(c.max_policies, 1u << 17);
  EXPECT_EQ(c.shm_name, "default");
  EXPECT_TRUE(c.exception_port.empty());
  EXPECT_TRUE(c.statics.sas.empty());
  EXPECT_TRUE(c.warnings.empty());
}

const char* kFull = R"(
dataplane = {
  shm = "site_a-1";
  exception = "net_tap9,iface=cyg-host";
  memory = { mbufs = 65535; mbuf_cache = 128; rx_ring = 2048; tx_ring = 512; handoff_ring = 4096;
             flow_cache_entries = 262144; max_sas = 5000; max_policies = 700; };
  cores = { workers = [ 3, 5, 4 ]; main = 2; };
  neighbours = (
    { ip = "192.0.2.2"; mac = "02:00:00:00:00:02"; port = "wan"; },
    { ip = "2001:db8:1::10"; mac = "0A:1b:2C:3d:4E:5f"; port = "lan"; },
    { ip = "10.9.0.7"; mac = "02:00:00:00:09:07"; port = "lan"; }
  );
  routes = (
    { dst = "10.2.0.0/16"; via = "192.0.2.2"; port = "wan"; },
    { dst = "10.9.0.0/24"; port = "lan"; },
    { dst = "::/0"; via = "2001:db8:1::fe"; port = "lan"; }
  );
  ports = (
    { name = "lan"; side = "protected"; device = "0000:03:00.0,rxq_pkt_burst=32";
      addresses = [ "10.1.0.1/16", "2001:db8:1::1/64" ]; mtu = 9000; },
    { name = "wan"; side = "unprotected"; device = "03:00.1";
      addresses = ( "192.0.2.1/24" ); mtu = 1400; mac = "02:00:00:00:00:01"; },
    { name = "mgmt-0"; side = "protected"; device = "net_af_packet0,iface=veth9,qpairs=3";
      addresses = [ "172.16.0.1/30" ]; }
  );
};
)";

TEST(DpConfig, EveryFieldIsParsed) {
  auto r = load_dp_string(kFull, "t.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const DpConfig& c = *r;
  ASSERT_EQ(c.ports.size(), 3u);
  const PortConfig& lan = c.ports[0];
  EXPECT_EQ(lan.name, "lan");
  EXPECT_EQ(lan.device, "0000:03:00.0,rxq_pkt_burst=32");
  EXPECT_EQ(lan.side, PortConfig::Side::protected_);
  ASSERT_EQ(lan.addresses.size(), 2u);
  EXPECT_EQ(lan.addresses[0].addr, ip("10.1.0.1")) << "the port's address keeps its host bits";
  EXPECT_EQ(lan.addresses[0].len, 16);
  EXPECT_EQ(lan.addresses[1].addr, ip("2001:db8:1::1"));
  EXPECT_EQ(lan.addresses[1].len, 64);
  EXPECT_TRUE(lan.addresses[0].contains(ip("10.1.200.3")));
  EXPECT_EQ(lan.mtu, 9000);
  EXPECT_FALSE(lan.mac.has_value());
  const PortConfig& wan = c.ports[1];
  EXPECT_EQ(wan.device, "03:00.1");
  EXPECT_EQ(wan.side, PortConfig::Side::unprotected);
  EXPECT_EQ(wan.mtu, 1400);
  ASSERT_TRUE(wan.mac.has_value());
  EXPECT_EQ(*wan.mac, mac(2, 0, 0, 0, 0, 1));
  EXPECT_EQ(c.ports[2].name, "mgmt-0");
  EXPECT_EQ(c.find_port("mgmt-0"), &c.ports[2]);
  EXPECT_EQ(c.find_port("nope"), nullptr);

  ASSERT_EQ(c.routes.size(), 3u);
  EXPECT_EQ(c.routes[0].dst.to_string(), "10.2.0.0/16");
  EXPECT_EQ(c.routes[0].via, ip("192.0.2.2"));
  EXPECT_EQ(c.routes[0].port, "wan");
  EXPECT_EQ(c.routes[1].via.family, Family::none) << "no via: on-link";
  EXPECT_TRUE(c.routes[1].via.is_unspecified());
  EXPECT_EQ(c.routes[2].dst.to_string(), "::/0");
  EXPECT_EQ(c.routes[2].port, "lan");

  ASSERT_EQ(c.neighbours.size(), 3u);
  EXPECT_EQ(c.neighbours[0].ip, ip("192.0.2.2"));
  EXPECT_EQ(c.neighbours[0].mac, mac(2, 0, 0, 0, 0, 2));
  EXPECT_EQ(c.neighbours[0].port, "wan");
  EXPECT_EQ(c.neighbours[1].mac, mac(0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f));
  EXPECT_EQ(c.neighbours[2].ip, ip("10.9.0.7")) << "on-link through the route without via";

  EXPECT_EQ(c.main_core, 2u);
  EXPECT_EQ(c.worker_cores, (std::vector<unsigned>{3, 5, 4}));
  EXPECT_EQ(c.mbufs, 65535u);
  EXPECT_EQ(c.mbuf_cache, 128u);
  EXPECT_EQ(c.rx_ring, 2048u);
  EXPECT_EQ(c.tx_ring, 512u);
  EXPECT_EQ(c.handoff_ring, 4096u);
  EXPECT_EQ(c.flow_cache_entries, 262144u);
  EXPECT_EQ(c.max_sas, 5000u);
  EXPECT_EQ(c.max_policies, 700u);
  EXPECT_EQ(c.shm_name, "site_a-1");
  EXPECT_EQ(c.exception_port, "net_tap9,iface=cyg-host");
  // The route via 2001:db8:1::fe has no neighbour.
  ASSERT_EQ(c.warnings.size(), 1u) << all(c.warnings);
  EXPECT_NE(c.warnings[0].find("t.conf:16: dataplane.routes[2]: no static neighbour for 2001:db8:1::fe"),
            std::string::npos)
      << all(c.warnings);
}

struct BadCase {
  std::string text;
  int line;  // 0: the message names no line (the file as a whole)
  std::vector<std::string> needles;
};

void expect_refused(const std::vector<BadCase>& cases) {
  for (const auto& c : cases) {
    auto e = load_error(c.text);
    SCOPED_TRACE(c.text);
    EXPECT_NE(e, "<ok>");
    if (c.line > 0) {
      EXPECT_EQ(e.rfind("t.conf:" + std::to_string(c.line) + ": ", 0), 0u) << e;
    } else {
      EXPECT_EQ(e.rfind("t.conf: ", 0), 0u) << e;
    }
    for (const auto& n : c.needles) EXPECT_NE(e.find(n), std::string::npos) << "'" << n << "' not in: " << e;
  }
}

TEST(DpConfig, UnknownSettingsAreRefused) {
  expect_refused({
      {dp(kLan, kWan, "prots = 1;"), 7,
       {"dataplane.prots: unknown setting (expected one of: ports, routes, neighbours, cores, memory, shm, "
        "exception)"}},
      {dp(sub(kLan, "device", "devcie")), 3, {"dataplane.ports[0].devcie: unknown setting", "expected one of: name"}},
      {dp(kLan, kWan, "", "sa = ();"), 9, {"sa: unknown setting (expected one of: dataplane, sas, policies)"}},
      {dp(kLan, kWan, "routes = ( { dst = \"10.2.0.0/16\"; gw = \"192.0.2.2\"; port = \"wan\"; } );"), 7,
       {"dataplane.routes[0].gw: unknown setting", "dst, via, port"}},
      {dp(kLan, kWan, "neighbours = ( { addr = \"192.0.2.2\"; } );"), 7,
       {"dataplane.neighbours[0].addr: unknown setting", "ip, mac, port"}},
      {dp(kLan, kWan, "", "", "cores = { main = 0; worker = [ 1 ]; };"), 6,
       {"dataplane.cores.worker: unknown setting", "main, workers"}},
      {dp(kLan, kWan, "memory = { mbuf = 4095; };"), 7, {"dataplane.memory.mbuf: unknown setting", "mbufs"}},
  });
}

TEST(DpConfig, StructureErrors) {
  expect_refused({
      {"sas = ();\n", 0, {"dataplane: missing (expected a group"}},
      {"dataplane = 1;\n", 1, {"dataplane: expected a group"}},
      {"dataplane = {\n cores = { workers = [1]; };\n};\n", 1, {"dataplane.ports: missing (expected a list"}},
      {"dataplane = {\n ports = { a = 1; };\n};\n", 2, {"dataplane.ports: expected a list"}},
      {"dataplane = {\n ports = ( 1 );\n};\n", 2, {"dataplane.ports[0]: expected a group { name"}},
      {dp(kLan, kWan, "routes = { };"), 7, {"dataplane.routes: expected a list"}},
      {dp(kLan, kWan, "routes = ( 5 );"), 7, {"dataplane.routes[0]: expected a group"}},
      {dp(kLan, kWan, "", "", "cores = [ 1 ];"), 6, {"dataplane.cores: expected a group"}},
      {dp(kLan, kWan, "", "", ""), 1, {"dataplane.cores: missing (expected a group"}},
      {dp(kLan, kWan, "memory = 5;"), 7, {"dataplane.memory: expected a group"}},
      {"dataplane = {\n ports = (\n", 3, {"syntax error"}},
  });
}

TEST(DpConfig, PortErrors) {
  expect_refused({
      {dp(kLan, sub(kWan, "unprotected", "protected")), 2,
       {"dataplane.ports: no unprotected port (expected at least one port with side = \"unprotected\")"}},
      {dp(sub(kLan, "\"protected\"", "\"unprotected\"")), 2, {"dataplane.ports: no protected port"}},
      {dp(kLan, sub(kWan, "\"wan\"", "\"lan\"")), 4, {"dataplane.ports[1].name: duplicate port name 'lan'"}},
      {dp(sub(kLan, "\"lan\"", "\"l an\"")), 3, {"dataplane.ports[0].name: 'l an' is not a port name (expected 1-32"}},
      {dp(sub(kLan, "\"lan\"", "\"" + std::string(33, 'x') + "\"")), 3, {"is not a port name"}},
      {dp(sub(kLan, "name = \"lan\";", "")), 3, {"dataplane.ports[0].name: missing (expected a port name"}},
      {dp(sub(kLan, "name = \"lan\";", "name = 5;")), 3, {"dataplane.ports[0].name: expected a port name"}},
      {dp(sub(kLan, "\"protected\"", "\"inside\"")), 3,
       {"dataplane.ports[0].side: unknown side 'inside' (expected one of: protected, unprotected)"}},
      {dp(sub(kLan, "side = \"protected\";", "")), 3, {"dataplane.ports[0].side: missing (expected \"protected\""}},
      {dp(sub(kLan, "device = \"net_tap0\";", "")), 3, {"dataplane.ports[0].device: missing"}},
      {dp(kLan, sub(kWan, "net_tap1", "net_tap0")), 4,
       {"dataplane.ports[1].device: device net_tap0 is already used by port 'lan'"}},
      {dp(sub(kLan, "net_tap0", "03:00.0"), sub(kWan, "net_tap1", "0000:03:00.0,x=1")), 4,
       {"device 0000:03:00.0 is already used by port 'lan'"}},
  });
  // A PCI port beside a vdev is fine.
  EXPECT_EQ(load_error(dp(kLan, sub(kWan, "net_tap1", "0000:03:00.0"))), "<ok>");
}

TEST(DpConfig, DeviceErrors) {
  const std::string drivers = "af_packet, tap, pcap, null, ring, virtio_user, memif";
  auto with = [](const std::string& dev) { return dp(sub(kLan, "net_tap0", dev)); };
  expect_refused({
      {with("net_foo0"), 3, {"dataplane.ports[0].device: unknown vdev driver 'net_foo'", drivers}},
      {with("net_ixgbe0"), 3, {"unknown vdev driver 'net_ixgbe'", drivers}},
      {with("eth_af_packet0,iface=x"), 3, {"'eth_af_packet0' is not a device (expected a PCI address", drivers}},
      {with("net_tap"), 3, {"'net_tap' needs an instance number", "net_tap0"}},
      {with("net_tap1234"), 3, {"needs an instance number of 1-3 digits"}},
      {with("net_af_packet0"), 3, {"net_af_packet needs the kernel interface", "iface="}},
      {with("net_af_packet0,qpairs=2"), 3, {"needs the kernel interface"}},
      {with("net_virtio_user0"), 3, {"net_virtio_user needs a path"}},
      {with("net_tap0,iface"), 3, {"device argument 'iface'", "malformed (expected ,key=value"}},
      {with("net_tap0,iface="), 3, {"malformed"}},
      {with("net_tap0,"), 3, {"malformed"}},
      {with("net_tap0,,iface=a"), 3, {"malformed"}},
      {with("net_tap0,if.ace=a"), 3, {"malformed"}},  // keys: letters, digits, _ and - (net_null's no-rx)
      {with("net_tap0, iface=a"), 3, {"space or control character"}},
      {with(""), 3, {"empty device"}},
      {with("0000:03:20.0"), 3, {"'0000:03:20.0' is not a device"}},
      {with("0000:03:00.8"), 3, {"is not a device"}},
      {with("000:03:00.0"), 3, {"is not a device"}},
      {with("03:00"), 3, {"is not a device"}},
      {with("0000:03:0.0"), 3, {"is not a device"}},
      {with("0000:g3:00.0"), 3, {"is not a device"}},
      {with("0000:03:00.0:1"), 3, {"is not a device"}},
  });
}

TEST(DpConfig, ValidDevices) {
  for (const char* d :
       {"0000:03:00.0", "03:00.0", "0000:AF:1f.7", "ffff:ff:00.0,class=eth", "net_af_packet0,iface=veth1",
        "net_af_packet12,iface=veth1,qpairs=4,blocksz=4096", "net_tap0", "net_tap3,iface=cyg-host",
        "net_pcap0,rx_pcap=/tmp/in.pcap,tx_pcap=/tmp/out.pcap", "net_pcap1,iface=eth0", "net_null0", "net_ring0",
        "net_virtio_user0,path=/dev/vhost-net,queues=1", "net_memif0,role=server,socket=/run/memif.sock"}) {
    auto r = validate_device(d);
    EXPECT_TRUE(r.ok()) << d << ": " << (r.ok() ? "" : r.error().message);
  }
  EXPECT_EQ(device_name("net_tap0,iface=x"), "net_tap0");
  EXPECT_EQ(device_name("0000:03:00.0"), "0000:03:00.0");
}

TEST(DpConfig, AddressErrors) {
  auto with = [](const std::string& a) { return dp(sub(kLan, "\"10.1.0.1/24\"", a)); };
  expect_refused({
      {with("\"10.1.0.1\""), 3, {"dataplane.ports[0].addresses[0]: '10.1.0.1' has no prefix length", "192.0.2.1/24"}},
      {with("\"10.1.0.300/24\""), 3, {"'10.1.0.300' is not an IPv4 or IPv6 address"}},
      {with("\"10.1.0.1/33\""), 3, {"prefix length must be 1-32"}},
      {with("\"10.1.0.1/0\""), 3, {"prefix length must be 1-32"}},
      {with("\"10.1.0.1/x\""), 3, {"prefix length must be 1-32"}},
      {with("\"2001:db8::1/129\""), 3, {"prefix length must be 1-128"}},
      {with("\"10.1.0.0/24\""), 3, {"network address of its subnet"}},
      {with("\"10.1.0.255/24\""), 3, {"broadcast address"}},
      {with("\"2001:db8::/64\""), 3, {"subnet-router anycast"}},
      {with("\"224.0.0.1/24\""), 3, {"not a unicast address"}},
      {with("\"ff02::1/64\""), 3, {"not a unicast address"}},
      {with("\"127.0.0.1/8\""), 3, {"not a unicast address"}},
      {with("\"::1/128\""), 3, {"not a unicast address"}},
      {with("\"0.0.0.0/8\""), 3, {"not a unicast address"}},
      {with("\"10.1.0.1/24\", \"10.1.0.1/16\""), 3, {"addresses[1]: address 10.1.0.1 is listed twice"}},
      {with("5"), 3, {"addresses[0]: expected an address string"}},
      {dp(sub(kLan, "[ \"10.1.0.1/24\" ]", "\"10.1.0.1/24\"")), 3,
       {"dataplane.ports[0].addresses: expected an array of addresses"}},
      {dp(sub(kLan, "[ \"10.1.0.1/24\" ]", "[ ]")), 3, {"dataplane.ports[0].addresses: empty"}},
      {dp(sub(kLan, "addresses = [ \"10.1.0.1/24\" ];", "")), 3, {"dataplane.ports[0].addresses: missing"}},
      {dp(kLan, sub(kWan, "192.0.2.1/24", "10.1.0.2/16")), 4,
       {"dataplane.ports[1].addresses[0]: 10.1.0.2/16 overlaps 10.1.0.1/24 of port 'lan'"}},
  });
  // Point-to-point and host addresses are fine.
  EXPECT_EQ(load_error(with("\"10.1.0.0/31\", \"10.9.9.9/32\", \"2001:db8::/127\"")), "<ok>");
  // Secondary addresses in one subnet of one port are fine too.
  EXPECT_EQ(load_error(with("\"10.1.0.1/24\", \"10.1.0.2/24\"")), "<ok>");
}

TEST(DpConfig, MtuAndMacErrors) {
  expect_refused({
      {dp(kLan + " mtu = 40;"), 3, {"dataplane.ports[0].mtu: value 40 out of range 68-9216"}},
      {dp(kLan + " mtu = 9217;"), 3, {"out of range 68-9216"}},
      {dp(kLan + " mtu = \"1500\";"), 3, {"dataplane.ports[0].mtu: expected an integer"}},
      {dp(sub(kLan, "\"10.1.0.1/24\"", "\"2001:db8::1/64\"") + " mtu = 1000;"), 3,
       {"dataplane.ports[0].mtu: MTU 1000 is below IPv6's minimum (expected at least 1280"}},
      {dp(kLan + " mac = \"02:00:00:00:00\";"), 3,
       {"dataplane.ports[0].mac: '02:00:00:00:00' is not a MAC address (expected a unicast MAC address"}},
      {dp(kLan + " mac = \"02-00-00-00-00-01\";"), 3, {"is not a MAC address"}},
      {dp(kLan + " mac = \"02:00:00:00:00:0g\";"), 3, {"is not a MAC address"}},
      {dp(kLan + " mac = \"01:00:5e:00:00:01\";"), 3, {"multicast or broadcast"}},
      {dp(kLan + " mac = \"ff:ff:ff:ff:ff:ff\";"), 3, {"multicast or broadcast"}},
      {dp(kLan + " mac = \"00:00:00:00:00:00\";"), 3, {"all zero"}},
  });
  EXPECT_EQ(load_error(dp(kLan + " mtu = 68;")), "<ok>");
  EXPECT_EQ(load_error(dp(sub(kLan, "\"10.1.0.1/24\"", "\"2001:db8::1/64\"") + " mtu = 1280;")), "<ok>");
}

TEST(DpConfig, Macs) {
  auto m = parse_mac("0A:1b:2C:3d:4E:5f");
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(mac_to_string(*m), "0a:1b:2c:3d:4e:5f");
  EXPECT_FALSE(parse_mac("").ok());
  EXPECT_FALSE(parse_mac("0a:1b:2c:3d:4e:5f:").ok());
  EXPECT_FALSE(parse_mac("0a:1b:2c:3d:4e::5").ok());
  EXPECT_FALSE(parse_mac("+a:1b:2c:3d:4e:5f").ok());
}

TEST(DpConfig, RouteErrors) {
  auto route = [](const std::string& body) { return dp(kLan, kWan, "routes = ( { " + body + " } );"); };
  expect_refused({
      {route(R"(dst = "10.2.0.0/16"; via = "192.0.2.2"; port = "dmz";)"), 7,
       {"dataplane.routes[0].port: no port named 'dmz' (expected one of: lan, wan)"}},
      {route(R"(dst = "10.2.0.0/16"; via = "192.0.2.2";)"), 7, {"dataplane.routes[0].port: missing"}},
      {route(R"(via = "192.0.2.2"; port = "wan";)"), 7, {"dataplane.routes[0].dst: missing (expected a destination"}},
      {route(R"(dst = "10.2.0.1/16"; via = "192.0.2.2"; port = "wan";)"), 7,
       {"dataplane.routes[0].dst:", "host bits must be zero"}},
      {route(R"(dst = "10.2.0.0/16"; via = "192.0.3.2"; port = "wan";)"), 7,
       {"dataplane.routes[0].via: 192.0.3.2 is not on-link on port 'wan' (expected an address inside one of its "
        "subnets: 192.0.2.1/24)"}},
      {route(R"(dst = "10.2.0.0/16"; via = "10.1.0.9"; port = "wan";)"), 7, {"is not on-link on port 'wan'"}},
      {route(R"(dst = "10.2.0.0/16"; via = "2001:db8::1"; port = "wan";)"), 7,
       {"dataplane.routes[0].via: IPv6 next hop for an IPv4 destination (expected the same family as dst)"}},
      {route(R"(dst = "10.2.0.0/16"; via = "192.0.2.1"; port = "wan";)"), 7,
       {"dataplane.routes[0].via: 192.0.2.1 is port 'wan''s own address"}},
      {route(R"(dst = "10.2.0.0/16"; via = "0.0.0.0"; port = "wan";)"), 7,
       {"dataplane.routes[0].via: unspecified address (expected a next-hop address, or no via"}},
      {route(R"(dst = "10.2.0.0/16"; via = "192.0.2.x"; port = "wan";)"), 7, {"not an IPv4 or IPv6 address"}},
      {route(R"(dst = "2001:db8:5::/48"; port = "wan";)"), 7,
       {"dataplane.routes[0].port: on-link IPv6 route on port 'wan', which has no IPv6 address"}},
      {route(R"(dst = "192.0.2.0/24"; port = "wan";)"), 7,
       {"dataplane.routes[0].dst: 192.0.2.0/24 is the connected subnet of port 'wan'"}},
      {dp(kLan, kWan,
          R"(routes = ( { dst = "0.0.0.0/0"; via = "192.0.2.2"; port = "wan"; }, )"
          R"({ dst = "0.0.0.0/0"; via = "192.0.2.3"; port = "wan"; } );)"),
       7, {"dataplane.routes[1].dst: a route to 0.0.0.0/0 is already defined"}},
  });
}

TEST(DpConfig, NeighbourErrors) {
  auto nb = [](const std::string& body) { return dp(kLan, kWan, "neighbours = ( { " + body + " } );"); };
  expect_refused({
      {nb(R"(ip = "192.0.2.2"; mac = "02:00:00:00:00:02"; port = "dmz";)"), 7,
       {"dataplane.neighbours[0].port: no port named 'dmz' (expected one of: lan, wan)"}},
      {nb(R"(ip = "10.1.0.2"; mac = "02:00:00:00:00:02"; port = "wan";)"), 7,
       {"dataplane.neighbours[0].ip: 10.1.0.2 is not on-link on port 'wan' (expected an address inside its subnets "
        "or on-link routes: 192.0.2.1/24)"}},
      {nb(R"(ip = "2001:db8::2"; mac = "02:00:00:00:00:02"; port = "wan";)"), 7, {"is not on-link on port 'wan'"}},
      {nb(R"(ip = "192.0.2.1"; mac = "02:00:00:00:00:02"; port = "wan";)"), 7,
       {"dataplane.neighbours[0].ip: 192.0.2.1 is port 'wan''s own address"}},
      {nb(R"(ip = "224.0.0.5"; mac = "02:00:00:00:00:02"; port = "wan";)"), 7,
       {"dataplane.neighbours[0].ip: expected a unicast address"}},
      {nb(R"(ip = "192.0.2.2"; mac = "02:00:00:00:00"; port = "wan";)"), 7,
       {"dataplane.neighbours[0].mac: '02:00:00:00:00' is not a MAC address"}},
      {nb(R"(ip = "192.0.2.2"; port = "wan";)"), 7, {"dataplane.neighbours[0].mac: missing (expected a MAC address"}},
      {nb(R"(mac = "02:00:00:00:00:02"; port = "wan";)"), 7, {"dataplane.neighbours[0].ip: missing"}},
      {dp(kLan, kWan,
          R"(neighbours = ( { ip = "192.0.2.2"; mac = "02:00:00:00:00:02"; port = "wan"; }, )"
          R"({ ip = "192.0.2.2"; mac = "02:00:00:00:00:03"; port = "wan"; } );)"),
       7, {"dataplane.neighbours[1].ip: a neighbour 192.0.2.2 is already defined"}},
  });
}

TEST(DpConfig, CoreErrors) {
  auto cores = [](const std::string& c) { return dp(kLan, kWan, "", "", c); };
  expect_refused({
      {cores("cores = { main = 0; workers = [ 1, 0 ]; };"), 6,
       {"dataplane.cores.workers[1]: core 0 is the main core (expected worker cores other than main = 0)"}},
      {cores("cores = { main = 3; workers = [ 3 ]; };"), 6, {"core 3 is the main core"}},
      {cores("cores = { workers = [ 1, 2, 1 ]; };"), 6,
       {"dataplane.cores.workers[2]: core 1 is listed twice (expected distinct cores)"}},
      {cores("cores = { workers = [ 1024 ]; };"), 6, {"dataplane.cores.workers[0]: value 1024 out of range 0-1023"}},
      {cores("cores = { main = 1024; workers = [ 1 ]; };"), 6,
       {"dataplane.cores.main: value 1024 out of range 0-1023"}},
      {cores("cores = { main = -1; workers = [ 1 ]; };"), 6, {"out of range 0-1023"}},
      {cores("cores = { workers = [ ]; };"), 6, {"dataplane.cores.workers: empty (expected at least one worker core)"}},
      {cores("cores = { main = 0; };"), 6, {"dataplane.cores.workers: missing (expected an array of worker core ids"}},
      {cores("cores = { workers = 1; };"), 6, {"dataplane.cores.workers: expected an array"}},
      {cores("cores = { workers = [ \"1\" ]; };"), 6, {"dataplane.cores.workers[0]: expected an integer"}},
  });
}

TEST(DpConfig, MemoryErrors) {
  auto mem = [](const std::string& m) { return dp(kLan, kWan, "memory = { " + m + " };"); };
  expect_refused({
      {mem("rx_ring = 1000;"), 7,
       {"dataplane.memory.rx_ring: value 1000 is not a power of two (expected a power of two in 64-32768)"}},
      {mem("tx_ring = 32;"), 7, {"dataplane.memory.tx_ring: value 32 out of range 64-32768"}},
      {mem("tx_ring = 65536;"), 7, {"dataplane.memory.tx_ring: value 65536 out of range 64-32768"}},
      {mem("handoff_ring = 1023;"), 7, {"dataplane.memory.handoff_ring: value 1023 is not a power of two"}},
      {mem("flow_cache_entries = 100000;"), 7, {"dataplane.memory.flow_cache_entries: value 100000 is not a power"}},
      {mem("flow_cache_entries = 33554432;"), 7, {"out of range 1024-16777216"}},
      {mem("mbufs = 100;"), 7, {"dataplane.memory.mbufs: value 100 out of range 1023-16777215"}},
      {mem("mbuf_cache = 513;"), 7, {"dataplane.memory.mbuf_cache: value 513 out of range 0-512"}},
      {mem("max_sas = 0;"), 7, {"dataplane.memory.max_sas: value 0 out of range 1-67108864"}},
      {mem("max_policies = 16777217;"), 7, {"dataplane.memory.max_policies: value 16777217 out of range 1-16777216"}},
      {mem("rx_ring = \"1024\";"), 7, {"dataplane.memory.rx_ring: expected an integer power of two in 64-32768"}},
      {mem("mbufs = 4000;"), 7,
       {"dataplane.memory.mbufs: 4000 mbufs are too few for 2 ports x 1 workers x (rx_ring 1024 + tx_ring 1024) + "
        "2 lcores x mbuf_cache 256 (expected at least 4608)"}},
      {mem("rx_ring = 8192; tx_ring = 8192;"), 7,
       {"dataplane.memory.mbufs: 16383 mbufs are too few", "expected at least 33280"}},
  });
}

TEST(DpConfig, MbufCheckWithoutMemoryGroup) {
  // 2 ports x 4 workers x 2048 + 5 x 256 = 17664 > 16383 (the default).
  auto e = load_error(dp(kLan, kWan, "", "", "cores = { workers = [ 1, 2, 3, 4 ]; };"));
  EXPECT_EQ(e.rfind("t.conf:1: dataplane.memory.mbufs: 16383 mbufs are too few", 0), 0u) << e;
  EXPECT_NE(e.find("expected at least 17664"), std::string::npos) << e;
  // With a memory group but no mbufs in it, the group is named.
  e = load_error(dp(kLan, kWan, "memory = { rx_ring = 8192; };"));
  EXPECT_EQ(e.rfind("t.conf:7: dataplane.memory.mbufs: 16383 mbufs are too few", 0), 0u) << e;
}

TEST(DpConfig, ShmAndExceptionErrors) {
  expect_refused({
      {dp(kLan, kWan, "shm = \"a.b\";"), 7,
       {"dataplane.shm: 'a.b' is not an shm instance name (expected 1-32 letters, digits, _ or -)"}},
      {dp(kLan, kWan, "shm = \"\";"), 7, {"is not an shm instance name"}},
      {dp(kLan, kWan, "shm = \"" + std::string(33, 'a') + "\";"), 7, {"is not an shm instance name"}},
      {dp(kLan, kWan, "shm = 1;"), 7, {"dataplane.shm: expected an shm instance name"}},
      {dp(kLan, kWan, "exception = \"net_null0\";"), 7,
       {"dataplane.exception: 'net_null0' cannot carry traffic to the host (expected a net_tap or net_virtio_user"}},
      {dp(kLan, kWan, "exception = \"0000:03:00.0\";"), 7, {"cannot carry traffic to the host"}},
      {dp(kLan, kWan, "exception = \"net_tap0,iface=x\";"), 7,
       {"dataplane.exception: device net_tap0 is already used by port 'lan'"}},
      {dp(kLan, kWan, "exception = \"net_bogus0\";"), 7, {"dataplane.exception: unknown vdev driver"}},
  });
  auto r = load_dp_string(dp(kLan, kWan, "exception = \"net_virtio_user5,path=/dev/vhost-net\"; shm = \"x\";"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->exception_port, "net_virtio_user5,path=/dev/vhost-net");
  EXPECT_EQ(r->shm_name, "x");
  EXPECT_EQ(load_error(dp(kLan, kWan, "exception = \"\";")), "<ok>") << "empty: no exception port";
}

TEST(DpConfig, AtMost32Ports) {
  std::string ports;
  for (int i = 0; i < 33; ++i) {
    ports += std::string(i ? ",\n" : "") + "{ name = \"p" + std::to_string(i) + "\"; side = \"" +
             (i ? "protected" : "unprotected") + "\"; device = \"net_null" + std::to_string(i) +
             "\"; addresses = [ \"10." + std::to_string(i) + ".0.1/16\" ]; }";
  }
  std::string text = "dataplane = {\n ports = (\n" + ports +
                     ");\n cores = { workers = [ 1 ]; };\n"
                     " memory = { rx_ring = 64; tx_ring = 64; mbuf_cache = 0; };\n};\n";
  auto e = load_error(text);
  EXPECT_EQ(e.rfind("t.conf:2: dataplane.ports: 33 ports (expected at most 32", 0), 0u) << e;
}

const char* kSa = R"({ spi = 0x1001; dir = "out"; src = "192.0.2.1"; dst = "192.0.2.2"; reqid = 1;
    enc = "aes-gcm16-128"; enc_key = "0x0102030405060708090a0b0c0d0e0f10a0a1a2a3"; })";

TEST(DpConfig, SasAndPoliciesInTheSameFile) {
  std::string top = std::string("sas = ( ") + kSa + R"(,
  { spi = 0x2001; dir = "in"; src = "192.0.2.2"; dst = "192.0.2.1"; reqid = 1;
    enc = "aes-gcm16-128"; enc_key = "0x1112131415161718191a1b1c1d1e1f20b0b1b2b3"; } );
policies = (
  { dir = "out"; priority = 10; action = "protect"; reqid = 1; src = "10.1.0.0/24"; dst = "10.2.0.0/16"; },
  { dir = "in"; action = "protect"; reqid = 1; src = "10.2.0.0/16"; dst = "10.1.0.0/24"; } );)";
  auto r = load_dp_string(dp(kLan, kWan, "", top), "t.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->statics.sas.size(), 2u);
  EXPECT_EQ(r->statics.sas[0].spi, 0x1001u);
  EXPECT_EQ(r->statics.sas[1].dir, Direction::in);
  ASSERT_EQ(r->statics.policies.size(), 2u);
  EXPECT_EQ(r->statics.policies[0].priority, 10u);
  EXPECT_TRUE(r->warnings.empty()) << all(r->warnings);

  // The static loader reads the same text and ignores the dataplane group.
  auto s = load_static_string(dp(kLan, kWan, "", top), "t.conf");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->sas.size(), 2u);

  // Errors in them keep their file, line and path.
  auto e = load_error(dp(kLan, kWan, "", "sas = ( { spi = 0x2000; dir = \"sideways\"; } );"));
  EXPECT_EQ(e.rfind("t.conf:9: sas[0].dir:", 0), 0u) << e;
  e = load_error(dp(kLan, kWan, "", "policies = 5;"));
  EXPECT_EQ(e.rfind("t.conf:9: policies: expected a list", 0), 0u) << e;

  // Limits from the dataplane group apply.
  e = load_error(dp(kLan, kWan, "memory = { max_sas = 1; };", top));
  EXPECT_EQ(e.rfind("t.conf:9: sas: 2 SAs (expected at most memory.max_sas = 1)", 0), 0u) << e;
  e = load_error(dp(kLan, kWan, "memory = { max_policies = 1; };", top));
  EXPECT_NE(e.find("policies: 2 policies (expected at most memory.max_policies = 1)"), std::string::npos) << e;
}

TEST(DpConfig, Warnings) {
  // An SA whose local end is not ours: loads, with a warning.
  std::string sa = sub(kSa, "src = \"192.0.2.1\"", "src = \"192.0.2.7\"");
  auto r = load_dp_string(dp(kLan, kWan, "", std::string("sas = ( ") + sa + " );"), "t.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0].rfind("t.conf:9: sas[0]: src 192.0.2.7 is not an address of an unprotected port", 0), 0u)
      << all(r->warnings);

  // A route whose next hop has no static neighbour.
  r = load_dp_string(dp(kLan, kWan, R"(routes = ( { dst = "10.2.0.0/16"; via = "192.0.2.2"; port = "wan"; } );)"),
                     "t.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0].rfind("t.conf:7: dataplane.routes[0]: no static neighbour for 192.0.2.2 on port 'wan'", 0),
            0u)
      << all(r->warnings);

  // net_af_packet with fewer queue pairs than workers.
  r = load_dp_string(dp(sub(kLan, "\"net_tap0\"", "\"net_af_packet0,iface=v0\""),
                        sub(kWan, "\"net_tap1\"", "\"net_af_packet1,iface=v1,qpairs=2\""), "", "",
                        "cores = { workers = [ 1, 2 ]; };"),
                     "t.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0].rfind("t.conf:3: dataplane.ports[0].device: net_af_packet has 1 queue pair(s) for 2 "
                                 "workers (add qpairs=2)",
                                 0),
            0u)
      << all(r->warnings);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(DpConfig, Files) {
  auto missing = load_dp_file("/nonexistent/dp.conf");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message, "/nonexistent/dp.conf: cannot read the file (missing or no permission)");

  auto dir = std::filesystem::temp_directory_path() / ("cygnet-dpcfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "dp.conf").string();
  {
    std::ofstream f(path);
    f << dp(kLan, kWan, "", std::string("sas = ( ") + kSa + " );");
  }
  ::chmod(path.c_str(), 0644);
  auto r = load_dp_file(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("chmod 600"), std::string::npos) << all(r->warnings);
  EXPECT_TRUE(r->statics.warnings.empty()) << "moved to DpConfig::warnings";
  ::chmod(path.c_str(), 0600);
  r = load_dp_file(path);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->warnings.empty());

  {
    std::ofstream f(path);
    f << dp(kLan, sub(kWan, "unprotected", "sideways"));
  }
  r = load_dp_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind(path + ":4: dataplane.ports[1].side: unknown side 'sideways'", 0), 0u)
      << r.error().message;
  {
    std::ofstream f(path);
    f << "dataplane = {\n ports = ( { name = \"a\" ) };\n";
  }
  r = load_dp_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind(path + ":2: syntax error", 0), 0u) << r.error().message;
  {
    std::ofstream f(path);
    f << "sas = ();\n";
  }
  r = load_dp_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind(path + ": dataplane: missing", 0), 0u) << r.error().message;
  std::filesystem::remove_all(dir);
}

TEST(DpConfig, DefaultConfigLoadsAndMatchesTheDemoFile) {
  auto r = load_dp_string(default_dp_config(), "<default>");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->warnings.empty()) << all(r->warnings);
  ASSERT_EQ(r->ports.size(), 2u);
  const PortConfig* lan = r->find_port("lan");
  const PortConfig* wan = r->find_port("wan");
  ASSERT_TRUE(lan && wan);
  EXPECT_EQ(lan->side, PortConfig::Side::protected_);
  EXPECT_EQ(lan->device, "net_af_packet0,iface=cyg-lan");
  EXPECT_EQ(lan->addresses[0].to_string(), "10.1.0.1/24");
  EXPECT_EQ(wan->side, PortConfig::Side::unprotected);
  EXPECT_EQ(wan->device, "net_af_packet1,iface=cyg-wan");
  EXPECT_EQ(wan->addresses[0].to_string(), "192.0.2.1/24");
  EXPECT_EQ(r->worker_cores.size(), 1u);
  EXPECT_FALSE(r->neighbours.empty());
  EXPECT_TRUE(r->statics.sas.empty()) << "no well-known keys in a default";
  EXPECT_EQ(r->exception_port, "net_tap0,iface=cyg-host");  // cygnet-ike reaches the wire through it

  const std::string file = std::string(CYGNET_CONF_DIR) + "/dp-demo.conf";
  auto on_disk = read_all(file);
  ASSERT_FALSE(on_disk.empty()) << file;
  EXPECT_EQ(on_disk, std::string(default_dp_config()))
      << file << " and default_dp_config() in cp/dp_config.cc have drifted apart";
}

TEST(DpConfig, Examples) {
  const std::string dir = CYGNET_CONF_DIR;
  auto two = load_dp_file(dir + "/dp-two-port.conf");
  ASSERT_TRUE(two.ok()) << two.error().message;
  EXPECT_EQ(two->ports.size(), 2u);
  EXPECT_EQ(two->worker_cores.size(), 2u);
  EXPECT_EQ(two->exception_port, "net_tap0,iface=cyg-host");
  EXPECT_EQ(two->statics.sas.size(), 2u);
  EXPECT_EQ(two->statics.policies.size(), 3u);
  for (const auto& w : two->warnings) {
    EXPECT_NE(w.find("chmod 600"), std::string::npos) << "only the file-mode warning may appear: " << w;
  }

  auto pcap = load_dp_file(dir + "/dp-pcap-bench.conf");
  ASSERT_TRUE(pcap.ok()) << pcap.error().message;
  EXPECT_EQ(pcap->ports[0].device.rfind("net_pcap0,", 0), 0u);
  EXPECT_EQ(pcap->ports[1].device, "net_null0,no-rx=1");  // a sink: without no-rx it "receives" junk
  EXPECT_EQ(pcap->flow_cache_entries, 1u << 20);

  auto pci = load_dp_file(dir + "/dp-pci.conf");
  ASSERT_TRUE(pci.ok()) << pci.error().message;
  EXPECT_EQ(pci->ports[0].device, "0000:03:00.0");
  EXPECT_EQ(pci->main_core, 2u);
  EXPECT_EQ(pci->worker_cores, (std::vector<unsigned>{4, 6}));
  EXPECT_TRUE(pci->warnings.empty()) << all(pci->warnings);
}

}  // namespace
}  // namespace cygnet::cfg
