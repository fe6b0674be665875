//! Shares encrypted to their holders: keys made with `age-keygen` and
//! `ssh-keygen`, shares decrypted with the holders' own `age -d` (Debian's
//! age, the Go implementation) and piped into `strongroom unseal` and
//! `strongroom rekey`, as the README tells operators to.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::cli::{status, strings};
use crate::support::daemon::{Daemon, config, tempdir};
use crate::support::quorum::start;

/// A share holder's key pair.
struct Holder {
    /// The identity file `age -d -i` takes.
    identity: PathBuf,
    /// The public recipient.
    recipient: String,
}

fn tool(name: &str) -> Command {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .unwrap()
            .status
            .success(),
        "{name} is missing: scripts/test installs Debian's age and openssh-client"
    );
    Command::new(name)
}

fn age_holder(dir: &Path, name: &str) -> Holder {
    let identity = dir.join(format!("{name}.agekey"));
    let out = tool("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&identity).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    Holder {
        identity,
        recipient,
    }
}

fn ssh_holder(dir: &Path, name: &str) -> Holder {
    let identity = dir.join(name);
    let out = tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&identity)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let recipient = std::fs::read_to_string(identity.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    Holder {
        identity,
        recipient,
    }
}

/// What `age -d -i IDENTITY` makes of an armored block.
fn age_decrypt(holder: &Holder, armored: &str, dir: &Path) -> String {
    let file = dir.join("share.age");
    std::fs::write(&file, armored).unwrap();
    let out = tool("age")
        .arg("-d")
        .arg("-i")
        .arg(&holder.identity)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn shares_for_age_and_ssh_recipients_are_decrypted_by_their_holders_and_used() {
    let dir = tempdir();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let holders = [
        age_holder(&keys, "alice"),
        ssh_holder(&keys, "bob"),
        age_holder(&keys, "carol"),
    ];
    let admin = ssh_holder(&keys, "admin");
    // Recipients from a file, one per line, with a comment.
    let list = keys.join("recipients.txt");
    std::fs::write(
        &list,
        format!(
            "# unseal key holders\n{}\n\n{}\n{}\n",
            holders[0].recipient, holders[1].recipient, holders[2].recipient
        ),
    )
    .unwrap();

    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    daemon
        .cli()
        .run(&[
            "init",
            "--key-shares",
            "3",
            "--recipients",
            &format!("{},{}", holders[0].recipient, holders[1].recipient),
        ])
        .code(1)
        .error_says("2 recipients were given for 3 unseal keys");
    daemon
        .cli()
        .run(&["init", "--key-shares", "1", "--recipients", "age1nope"])
        .code(1)
        .error_says("recipient 1 is not a recipient strongroom can encrypt to");
    assert_eq!(
        status(&daemon)["initialized"],
        false,
        "a refused init wrote nothing"
    );

    let init = daemon
        .cli()
        .run(&[
            "init",
            "--key-shares",
            "3",
            "--key-threshold",
            "2",
            "--recipients",
            list.to_str().unwrap(),
            "--root-token-recipient",
            &admin.recipient,
            "--format",
            "json",
        ])
        .ok()
        .json();
    let armored = strings(&init["unseal_keys_b64"]);
    assert_eq!(armored.len(), 3);
    assert_eq!(init["unseal_keys_hex"], serde_json::json!([]));
    for block in &armored {
        assert!(
            block.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
            "{block}"
        );
    }
    let token = age_decrypt(&admin, init["root_token"].as_str().unwrap(), &keys);
    let token = token.trim().to_string();
    assert!(token.starts_with("sr."), "{token}");

    // Each holder decrypts their own share and pipes it into unseal.
    let bob = age_decrypt(&holders[1], &armored[1], &keys);
    let carol = age_decrypt(&holders[2], &armored[2], &keys);
    daemon.cli().run_stdin(&["unseal"], &bob).ok();
    daemon.cli().run_stdin(&["unseal"], &carol).ok();
    assert_eq!(status(&daemon)["sealed"], false);
    daemon.env.insert("STRONGROOM_TOKEN".into(), token.clone());

    // A rekey to new recipients: the old holders authorize, the new ones receive.
    let dave = age_holder(&keys, "dave");
    let erin = ssh_holder(&keys, "erin");
    let (nonce, _) = start(
        &daemon,
        "rekey",
        &[
            "--key-shares",
            "2",
            "--key-threshold",
            "2",
            "--recipients",
            &format!("{},{}", dave.recipient, erin.recipient),
        ],
    );
    let alice = age_decrypt(&holders[0], &armored[0], &keys);
    daemon
        .cli()
        .run_stdin(&["rekey", "--nonce", &nonce], &alice)
        .ok();
    let done = daemon
        .cli()
        .run_stdin(&["rekey", "--nonce", &nonce, "--format", "json"], &carol)
        .ok()
        .json();
    let new = strings(&done["keys_base64"]);
    assert_eq!(new.len(), 2);
    assert_eq!(
        done["keys"],
        serde_json::json!([]),
        "no new key in the clear"
    );

    daemon.restart();
    for (holder, block) in [(&dave, &new[0]), (&erin, &new[1])] {
        let share = age_decrypt(holder, block, &keys);
        daemon.cli().run_stdin(&["unseal"], &share).ok();
    }
    assert_eq!(status(&daemon)["sealed"], false);

    let log = daemon.stderr.text() + &daemon.stdout.text();
    for secret in [&bob, &carol, &alice, &token] {
        assert!(
            !log.contains(secret.trim()),
            "a share or the token reached the log"
        );
    }
}
