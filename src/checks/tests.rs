use super::*;

fn allowed(list: &[&str]) -> AllowedHosts {
    AllowedHosts::new(
        list.iter()
            .map(|t| HostRule::parse(t).unwrap_or_else(|e| panic!("{e}")))
            .collect(),
    )
}

#[test]
fn a_url_must_be_http_with_a_host_in_one_piece() {
    assert_eq!(check_http_url("https://app.example.com/healthz"), Ok(()));
    assert_eq!(check_http_url("http://127.0.0.1:8080"), Ok(()));
    for (url, says) in [
        ("ftp://x/y", "starting with http:// or https://"),
        ("", "starting with http:// or https://"),
        ("http://", "names no host"),
        ("http://:80/x", "names no host"),
        ("http://user@/x", "names no host"),
        ("http://a b/", "white space"),
        ("http://a/\n", "white space"),
    ] {
        match check_http_url(url) {
            Ok(()) => panic!("{url:?} passed"),
            Err(e) => assert!(e.contains(says), "{url:?}: {e}"),
        }
    }
}

#[test]
fn an_address_is_host_and_port() {
    assert_eq!(
        parse_address("DB.internal:5432"),
        Ok(("db.internal".into(), 5432))
    );
    assert_eq!(parse_address("[::1]:80"), Ok(("::1".into(), 80)));
    for bad in [
        "db", "db:", "db:0", "db:70000", ":80", "::1:80", "[::1:80", "a b:1",
    ] {
        assert!(parse_address(bad).is_err(), "{bad:?} passed");
    }
}

#[test]
fn an_answer_meets_status_then_text_then_pattern() -> Result<(), String> {
    let pattern = BodyPattern::new(r#""ready":\s*true"#)?;
    let expect = HttpExpectation {
        status: 200,
        body_contains: Some("ok"),
        body_matches: Some(&pattern),
    };
    assert_eq!(expect.judge(200, r#"{"ok": 1, "ready": true}"#), Ok(()));
    assert_eq!(
        expect.judge(503, "ok"),
        Err("answered 503, expected 200".into())
    );
    assert_eq!(
        expect.judge(200, r#"{"ready": true}"#),
        Err(r#"the body does not contain "ok""#.into())
    );
    assert_eq!(
        expect.judge(200, r#"{"ok": 1, "ready": false}"#),
        Err("the body does not match the pattern".into())
    );
    assert!(BodyPattern::new("(unclosed").is_err());
    Ok(())
}

#[test]
fn hosts_are_allowed_by_name_and_port() {
    let hosts = allowed(&[
        "App.Example.com",
        "db.internal:5432",
        "127.0.0.1",
        "[::1]:8080",
    ]);
    assert!(hosts.allows("app.example.com", 443));
    assert!(hosts.allows("APP.example.com.", 80));
    assert!(hosts.allows("db.internal", 5432));
    assert!(!hosts.allows("db.internal", 5433));
    assert!(hosts.allows("127.0.0.1", 9));
    assert!(hosts.allows("[::1]", 8080));
    assert!(!hosts.allows("::1", 8081));
    assert!(!hosts.allows("example.com", 443));
    assert!(!hosts.allows("evil.app.example.com", 443));
    assert!(!AllowedHosts::default().allows("127.0.0.1", 80));
    for bad in ["http://x", "x/y", "a b", "x:0", "x:port", "u@x"] {
        assert!(HostRule::parse(bad).is_err(), "{bad:?} was taken");
    }
}

#[test]
fn metadata_and_other_special_addresses_need_listing_by_address() {
    let by_name = allowed(&["metadata.internal"]);
    for ip in [
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "fe80::1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::169.254.169.254",
        "::169.254.169.254",
        "fd00:ec2::254",
        "fd20:ce::254",
        "127.0.0.1",
        "127.8.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "0.1.2.3",
        "100.100.100.200",
    ] {
        let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(!by_name.allows_address(ip), "{ip} allowed");
    }
    for ordinary in [
        "64:ff9b::a01:203",
        "2001:db8::1",
        "100.64.0.1",
        "100.101.7.9",
        "192.168.1.10",
    ] {
        let ip: IpAddr = ordinary.parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(by_name.allows_address(ip), "{ip} refused");
    }
    assert!(by_name.allows_address(IpAddr::from([10, 1, 2, 3])));
    let other_unique_local: IpAddr = "fd00:ec2::253".parse().unwrap_or_else(|e| panic!("{e}"));
    assert!(by_name.allows_address(other_unique_local));
    let by_address = allowed(&["169.254.169.254", "127.0.0.1", "[::1]"]);
    assert!(by_address.allows_address(IpAddr::from([169, 254, 169, 254])));
    // Loopback is reached when the setting names that address itself.
    assert!(by_address.allows_address(IpAddr::from([127, 0, 0, 1])));
    assert!(by_address.allows_address("::1".parse().unwrap_or_else(|e| panic!("{e}"))));
    assert!(!by_address.allows_address(IpAddr::from([127, 0, 0, 2])));
    // `localhost` names loopback: its own addresses are reached, while another
    // allowed name that resolves to loopback (rebound) is not.
    let local = allowed(&["localhost:8080", "ci.example"]);
    let v6_loopback: IpAddr = "::1".parse().unwrap_or_else(|e| panic!("{e}"));
    assert!(local.allows_address_of("localhost", IpAddr::from([127, 0, 0, 1])));
    assert!(local.allows_address_of("LocalHost.", v6_loopback));
    assert!(!local.allows_address_of("ci.example", IpAddr::from([127, 0, 0, 1])));
    assert!(!local.allows_address_of("localhost", IpAddr::from([169, 254, 169, 254])));
    assert!(local.allows_address_of("ci.example", IpAddr::from([10, 0, 0, 7])));
}
