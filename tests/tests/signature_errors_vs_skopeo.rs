//! containers/image (Debian's skopeo) as the oracle for the `signature` error class: a pull that
//! policy.json refuses fails with a text the journal grammar files under `signature`, whatever
//! the requirement (`reject`, a `sigstoreSigned` scope with no signature at the location), and
//! a policy that accepts the image copies it.

use std::path::Path;
use std::time::Duration;

use mirrorscope_core::journal::cimage_error::classify_error;
use mirrorscope_core::journal::ErrorClass;
use mirrorscope_e2e::collector::TempDir;
use mirrorscope_e2e::oci;
use mirrorscope_e2e::registry::{ec_private_key, openssl, Registry};
use mirrorscope_e2e::skopeo::{command, run_with_timeout, SkopeoHome};

/// `skopeo copy` of `image` to a local directory under `policy`: Ok, or the error text.
fn copy_under(policy: &str, image: &str) -> Result<(), String> {
    let home = SkopeoHome::new();
    let work = TempDir::new("sig-copy");
    let policy_path = work.join("policy.json");
    std::fs::write(&policy_path, policy).unwrap();
    let mut cmd = command(home.path());
    cmd.arg("--policy")
        .arg(&policy_path)
        .arg("copy")
        .arg("--src-tls-verify=false")
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", work.join("out").display()));
    let out = run_with_timeout(cmd, Duration::from_secs(90));
    assert!(!out.timed_out, "skopeo copy timed out: {}", out.stderr);
    match out.success() {
        true => Ok(()),
        false => Err(out.stderr),
    }
}

fn public_key_pem(dir: &Path) -> String {
    ec_private_key(dir, "key.pem");
    openssl(
        dir,
        &["ec", "-in", "key.pem", "-pubout", "-out", "public.pem"],
    );
    std::fs::read_to_string(dir.join("public.pem")).unwrap()
}

fn base64(s: &str) -> String {
    mirrorscope_e2e::collector::base64(s.as_bytes())
}

#[test]
fn policy_refusals_are_the_signature_class_and_acceptance_copies() {
    let r = Registry::plain();
    oci::seed(&r, "ns/app", "1", "signed-app");
    let image = format!("{}/ns/app:1", r.host());

    let accept = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;
    copy_under(accept, &image).expect("insecureAcceptAnything copies the image");

    let reject = r#"{"default":[{"type":"reject"}]}"#;
    let e = copy_under(reject, &image).expect_err("reject copies nothing");
    assert!(
        e.contains("Source image rejected: Running image docker://"),
        "{e}"
    );
    assert!(e.contains("is rejected by policy."), "{e}");
    assert_eq!(classify_error(&e), ErrorClass::Signature, "{e}");

    let keys = TempDir::new("sig-keys");
    let signed = format!(
        r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{"{}/ns":[{{"type":"sigstoreSigned","keyData":"{}","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
        r.host(),
        base64(&public_key_pem(&keys))
    );
    let e = copy_under(&signed, &image).expect_err("an unsigned image under sigstoreSigned");
    assert!(
        e.contains("Source image rejected: A signature was required, but no signature exists"),
        "{e}"
    );
    assert_eq!(classify_error(&e), ErrorClass::Signature, "{e}");

    // The scope is the repository: another repository of the same registry is not covered.
    oci::seed(&r, "other/app", "1", "other-app");
    copy_under(&signed, &format!("{}/other/app:1", r.host()))
        .expect("a repository outside the signed scope copies");
}
