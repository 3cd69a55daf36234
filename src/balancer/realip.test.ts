import * as assert from "node:assert/strict";
import { BlockList, isIP } from "node:net";
import { describe, test } from "node:test";
import { normalizePeer, parseAddress, RealIpResolver } from "./realip.ts";

describe("RealIpResolver (nginx realip)", () => {
  test("default: nobody is trusted, the header is ignored", () => {
    const r = new RealIpResolver();
    assert.equal(r.header, "x-real-ip");
    assert.equal(r.resolve("127.0.0.1", { "x-real-ip": "9.9.9.9" }), "127.0.0.1");
    assert.equal(r.isTrusted("127.0.0.1"), false);
  });

  test("an untrusted peer is never believed", () => {
    const r = new RealIpResolver({ from: ["10.0.0.0/8"], header: "X-Forwarded-For", recursive: true });
    assert.equal(r.resolve("192.0.2.7", { "x-forwarded-for": "9.9.9.9" }), "192.0.2.7");
    assert.equal(r.resolve("11.0.0.1", { "x-forwarded-for": "9.9.9.9" }), "11.0.0.1");
  });

  test("trusted single address and CIDRs, IPv4 and IPv6", () => {
    const r = new RealIpResolver({ from: ["127.0.0.1", "10.0.0.0/8", "2001:db8::/32", "::1"] });
    const h = { "x-real-ip": "203.0.113.5" };
    assert.equal(r.resolve("127.0.0.1", h), "203.0.113.5");
    assert.equal(r.resolve("127.0.0.2", h), "127.0.0.2");
    assert.equal(r.resolve("10.200.3.4", h), "203.0.113.5");
    assert.equal(r.resolve("2001:db8:1::9", h), "203.0.113.5");
    assert.equal(r.resolve("2001:db9::9", h), "2001:db9::9");
    assert.equal(r.resolve("::1", h), "203.0.113.5");
    // IPv4-mapped peers (dual-stack sockets) count as their IPv4 address
    assert.equal(r.resolve("::ffff:10.1.1.1", h), "203.0.113.5");
    assert.equal(r.resolve("::ffff:192.0.2.1", h), "192.0.2.1");
    assert.equal(r.isTrusted("::ffff:127.0.0.1"), true);
  });

  test("non-recursive: the last address of the whole list", () => {
    const r = new RealIpResolver({ from: ["10.0.0.0/8"], header: "X-Forwarded-For" });
    assert.equal(r.resolve("10.0.0.1", { "x-forwarded-for": "1.1.1.1, 10.0.0.2, 2.2.2.2" }), "2.2.2.2");
    assert.equal(r.resolve("10.0.0.1", { "x-forwarded-for": "1.1.1.1, 10.0.0.2" }), "10.0.0.2");
    // repeated lines (as rawHeaders/array) are one list read right to left
    assert.equal(r.resolve("10.0.0.1", { "x-forwarded-for": ["1.1.1.1, 3.3.3.3", "4.4.4.4"] }), "4.4.4.4");
  });

  test("recursive: the right-most address not in from; all trusted → the left-most", () => {
    const r = new RealIpResolver({
      from: ["10.0.0.0/8", "fd00::/8"],
      header: "X-Forwarded-For",
      recursive: true,
    });
    const peer = "10.0.0.1";
    assert.equal(r.resolve(peer, { "x-forwarded-for": "1.1.1.1, 2.2.2.2, 10.0.0.2, 10.0.0.3" }), "2.2.2.2");
    assert.equal(
      r.resolve(peer, { "x-forwarded-for": ["1.1.1.1, 2.2.2.2", "10.0.0.2", "10.0.0.3"] }),
      "2.2.2.2",
    );
    assert.equal(r.resolve(peer, { "x-forwarded-for": "10.1.1.1, 10.0.0.2, fd00::1" }), "10.1.1.1");
    assert.equal(r.resolve(peer, { "x-forwarded-for": "2001:db8::5, fd00::1" }), "2001:db8::5");
  });

  test("ports and brackets are stripped", () => {
    const r = new RealIpResolver({ from: ["127.0.0.1"], header: "X-Forwarded-For" });
    assert.equal(r.resolve("127.0.0.1", { "x-forwarded-for": "1.2.3.4:5678" }), "1.2.3.4");
    assert.equal(r.resolve("127.0.0.1", { "x-forwarded-for": "[::1]:80" }), "::1");
    assert.equal(r.resolve("127.0.0.1", { "x-forwarded-for": "[2001:db8::1]" }), "2001:db8::1");
    assert.equal(r.resolve("127.0.0.1", { "x-forwarded-for": "2001:db8::1" }), "2001:db8::1");
    assert.equal(r.resolve("127.0.0.1", { "x-forwarded-for": "5.6.7.8, " }), "5.6.7.8");
  });

  test("garbage keeps the peer address", () => {
    const r = new RealIpResolver({ from: ["127.0.0.1"], header: "X-Forwarded-For", recursive: true });
    for (const bad of [
      "nonsense",
      "1.2.3.4.5",
      "999.1.1.1",
      "1.2.3.4:port",
      "[::1",
      "[1.2.3.4]:80",
      "::1:80:x",
      "",
    ]) {
      assert.equal(r.resolve("127.0.0.1", { "x-forwarded-for": bad }), "127.0.0.1", JSON.stringify(bad));
    }
    assert.equal(r.resolve("127.0.0.1", { "x-forwarded-for": "1.1.1.1, junk" }), "127.0.0.1");
  });

  test("parseAddress and normalizePeer", () => {
    assert.equal(parseAddress(" 1.2.3.4 "), "1.2.3.4");
    assert.equal(parseAddress("[::ffff:1.2.3.4]:9"), "1.2.3.4");
    assert.equal(parseAddress("1.2.3.4:99999"), "1.2.3.4");
    assert.equal(parseAddress("[::1]:x"), undefined);
    assert.equal(normalizePeer("::ffff:1.2.3.4"), "1.2.3.4");
    assert.equal(normalizePeer(undefined), "");
  });

  test("bad `from` entries and headers throw errors naming the entry", () => {
    assert.throws(() => new RealIpResolver({ from: ["10.0.0.0/8", "banana"] }), {
      name: "InvalidArgumentError",
      message: /options\.from: "banana" is not an IP address or CIDR/,
    });
    assert.throws(
      () => new RealIpResolver({ from: ["10.0.0.0/33"] }),
      /"10\.0\.0\.0\/33" has an invalid prefix length/,
    );
    assert.throws(() => new RealIpResolver({ from: ["::/129"] }), /"::\/129"/);
    assert.throws(() => new RealIpResolver({ from: ["10.0.0.0/x"] }), /"10\.0\.0\.0\/x"/);
    assert.throws(() => new RealIpResolver({ from: [42 as unknown as string] }), /options\.from\[0\]: 42/);
    assert.throws(
      () => new RealIpResolver({ from: 5 as unknown as string[] }),
      /options\.from: expected a list/,
    );
    assert.throws(() => new RealIpResolver({ header: "bad header" }), /options\.header: "bad header"/);
    // a comma-separated string is accepted (as GoDoxy does)
    assert.deepEqual(new RealIpResolver({ from: "10.0.0.0/8, 127.0.0.1" }).from, ["10.0.0.0/8", "127.0.0.1"]);
  });

  test("the hand-written parser and matcher agree with node:net (isIP, BlockList) on random input", () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const v4 = () => `${rnd(256)}.${rnd(256)}.${rnd(256)}.${rnd(256)}`;
    const v6 = () => {
      const g = Array.from({ length: 8 }, () => (rnd(3) === 0 ? 0 : rnd(65536)).toString(16));
      let text = g.join(":");
      if (rnd(2)) text = new URL(`http://[${text}]/`).hostname.slice(1, -1); // node's compressed form
      if (rnd(8) === 0) text = `::ffff:${v4()}`;
      if (rnd(8) === 0) text = `${g.slice(0, 6).join(":")}:${v4()}`;
      return rnd(4) === 0 ? text.toUpperCase() : text;
    };
    const alphabet = "0123456789abcdef:.x% ";
    const mutate = (t: string) => {
      const i = rnd(t.length + 1);
      switch (rnd(3)) {
        case 0:
          return t.slice(0, i) + alphabet[rnd(alphabet.length)] + t.slice(i);
        case 1:
          return t.slice(0, i) + t.slice(i + 1);
        default:
          return (
            t.slice(0, i) +
            t
              .slice(i, i + 2)
              .split("")
              .reverse()
              .join("") +
            t.slice(i + 2)
          );
      }
    };
    for (let k = 0; k < 20000; k++) {
      let text = rnd(2) ? v4() : v6();
      if (rnd(2)) text = mutate(text);
      if (/^[0-9.]+:\d+$/.test(text) || text.trim() !== text || text.includes(" ")) continue; // host:port forms are ours
      assert.equal(parseAddress(text) !== undefined, isIP(text) !== 0, JSON.stringify(text));
    }
    const matched = [0, 0];
    for (let k = 0; k < 3000; k++) {
      const six = rnd(2) === 1;
      const net = six ? v6().replace(/^::ffff:.*/, "2001:db8::") : v4();
      const bits = rnd(six ? 129 : 33);
      const list = new BlockList();
      list.addSubnet(net, bits, six ? "ipv6" : "ipv4");
      const r = new RealIpResolver({ from: [`${net}/${bits}`] });
      for (let j = 0; j < 10; j++) {
        // addresses near the network and random ones
        let addr = six ? v6() : v4();
        if (addr.startsWith("::ffff:") || (!six && rnd(2))) addr = six ? "2001:db8::1" : net;
        if (!six && rnd(2)) addr = addr.replace(/\d+$/, String(rnd(256)));
        if (six && rnd(2)) addr = net.replace(/[0-9a-f]+$/i, rnd(65536).toString(16));
        if (isIP(addr) !== (six ? 6 : 4)) continue;
        const inside = list.check(addr, six ? "ipv6" : "ipv4");
        matched[inside ? 1 : 0]++;
        assert.equal(r.isTrusted(addr), inside, `${addr} in ${net}/${bits}`);
      }
    }
    assert.ok(matched[0] > 1000 && matched[1] > 1000, `both outcomes were exercised: ${matched}`);
  });
});
