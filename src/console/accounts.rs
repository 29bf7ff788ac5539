//! The console's accounts: the file named by the `console_accounts` setting (YAML: a list of
//! `name`, `role`, `password_hash`), the four demo accounts `serve --demo` adds, and password
//! checks. In: the file, or a password to hash. Out: [`Accounts`], a PHC string (argon2id) from
//! [`hash_password`], or whether a password is right. Passwords are never kept, logged or
//! compared in the clear: only argon2 hashes (the `argon2` crate, PHC strings, its default
//! parameters: argon2id, 19 MiB, 2 passes). An unknown account costs a check against a dummy hash,
//! so a wrong name and a wrong password take as long.

use super::roles::Role;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::Deserialize;
use std::path::Path;

/// The accounts file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsFile {
    /// Everyone who may sign in.
    accounts: Vec<AccountEntry>,
}

/// One account as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountEntry {
    /// The sign-in name: 1–64 of `a-z A-Z 0-9 . _ -` (it names the operator in audit events,
    /// so it is an account name, never a person's name in full).
    name: String,
    /// `viewer`, `operator`, `privacy` or `admin`.
    role: String,
    /// The argon2 hash of the password as a PHC string (`$argon2id$v=19$…`), made by
    /// `kaigo-hub console hash-password`.
    password_hash: String,
}

/// One account that may sign in.
#[derive(Debug, Clone)]
pub struct Account {
    /// The sign-in name (shown on every page, and the operator in audit events).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The argon2 PHC string.
    hash: String,
}

/// Every account in force.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    all: Vec<Account>,
}

/// The names of the demo accounts `serve --demo` adds, each with the password `<name>-password`.
pub const DEMO_ACCOUNTS: [(&str, Role); 4] = [
    ("demo-viewer", Role::Viewer),
    ("demo-operator", Role::Operator),
    ("demo-privacy", Role::Privacy),
    ("demo-admin", Role::Admin),
];

/// Checked against when the account does not exist, so that costs what a wrong password does:
/// the hash of random bytes nobody knows, made once per process with the default parameters.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let secret = crate::key_file::random(32).map(|b| crate::key_file::hex(&b));
        // Without a random source there is no salt either: an unparsable string still fails
        // every check (and so still refuses), only faster.
        secret
            .and_then(|s| hash_password(&s).ok())
            .unwrap_or_default()
    })
}

/// The hash of `password` as a PHC string (argon2id, default parameters, a fresh random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = crate::key_file::random(16).ok_or("the system's random source failed")?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Checks a PHC string: argon2 (id, i or d) with a salt and a hash.
fn check_hash(phc: &str) -> Result<(), String> {
    let h = PasswordHash::new(phc).map_err(|e| {
        format!("password_hash is not a PHC string ({e}); make one with `kaigo-hub console hash-password`")
    })?;
    if !matches!(h.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") || h.hash.is_none() {
        return Err(format!(
            "password_hash is a `{}` hash; it must be argon2 (`$argon2id$…`), made with `kaigo-hub console hash-password`",
            h.algorithm
        ));
    }
    Ok(())
}

/// Is `name` a usable account name?
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("name must be 1 to 64 of the characters a-z A-Z 0-9 . _ -".into())
    }
}

impl Accounts {
    /// No accounts: nobody can sign in (the console says so on its sign-in page).
    pub fn none() -> Accounts {
        Accounts::default()
    }

    /// Reads the accounts file; an error names the file, the entry (by position and name) and
    /// what to do, and never quotes a hash.
    pub fn load(path: &Path) -> Result<Accounts, String> {
        let file = path.display();
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("console_accounts: {file}: {e}"))?;
        let parsed: AccountsFile = serde_saphyr::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            format!(
                "console_accounts: {file}: {at}{}",
                e.to_string().lines().next().unwrap_or("")
            )
        })?;
        let mut accounts = Accounts::none();
        for (i, entry) in parsed.accounts.into_iter().enumerate() {
            let at = |m: String| format!("console_accounts: {file}: accounts[{i}]: {m}");
            check_name(&entry.name).map_err(at)?;
            let at = |m: String| {
                format!(
                    "console_accounts: {file}: accounts[{i}] ({}): {m}",
                    entry.name
                )
            };
            let role: Role = entry.role.parse().map_err(at)?;
            check_hash(&entry.password_hash).map_err(at)?;
            accounts
                .add(Account {
                    name: entry.name.clone(),
                    role,
                    hash: entry.password_hash,
                })
                .map_err(at)?;
        }
        Ok(accounts)
    }

    /// Adds the four demo accounts (`serve --demo` only), each with the password
    /// `<name>-password`; an accounts file may not already hold one of those names.
    pub fn add_demo(&mut self) -> Result<(), String> {
        for (name, role) in DEMO_ACCOUNTS {
            let hash = hash_password(&format!("{name}-password"))?;
            self.add(Account {
                name: name.to_string(),
                role,
                hash,
            })
            .map_err(|e| format!("--demo: {e}"))?;
        }
        Ok(())
    }

    fn add(&mut self, account: Account) -> Result<(), String> {
        if self.get(&account.name).is_some() {
            return Err(format!("account `{}` is listed twice", account.name));
        }
        self.all.push(account);
        Ok(())
    }

    /// The account named `name`.
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.all.iter().find(|a| a.name == name)
    }

    /// Every account, in the file's order (the demo accounts last).
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.all.iter()
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there is no account at all.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The account `name` if `password` is its password. Slow on purpose (argon2): call it off
    /// the reactor (`web::block`). An unknown name is checked against a dummy hash first.
    pub fn verify(&self, name: &str, password: &str) -> Option<Account> {
        let account = self.get(name);
        let phc = account.map_or(dummy_hash(), |a| a.hash.as_str());
        let right = PasswordHash::new(phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        account.filter(|_| right).cloned()
    }
}

#[cfg(test)]
impl Account {
    /// An account with an unusable hash, for tests of what comes after sign-in.
    pub(crate) fn for_tests(name: &str, role: Role) -> Account {
        Account {
            name: name.into(),
            role,
            hash: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "kaigo-accounts-{}-{}.yaml",
            std::process::id(),
            crate::pipeline::clock::envelope_id()
        ));
        std::fs::write(&p, text).expect("temp file");
        p
    }

    #[test]
    fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        let p = write(&format!(
            "accounts:\n  - {{ name: ops-1, role: operator, password_hash: '{h}' }}\n"
        ));
        let a = Accounts::load(&p).expect("loads");
        assert_eq!(a.len(), 1);
        let ok = a.verify("ops-1", "correct horse").expect("right password");
        assert_eq!((ok.name.as_str(), ok.role), ("ops-1", Role::Operator));
        assert!(a.verify("ops-1", "wrong").is_none());
        assert!(a.verify("nobody", "correct horse").is_none());
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn the_dummy_hash_is_a_valid_argon2_hash() {
        check_hash(dummy_hash()).expect("usable");
    }

    #[test]
    fn bad_entries_are_errors_naming_the_file_entry_and_fix() {
        let h = hash_password("x").expect("hash");
        let cases = [
            (
                format!("accounts:\n  - {{ name: a, role: root, password_hash: '{h}' }}\n"),
                "accounts[0] (a): role `root`",
            ),
            (
                "accounts:\n  - { name: a, role: admin, password_hash: secret }\n".to_string(),
                "kaigo-hub console hash-password",
            ),
            (
                format!("accounts:\n  - {{ name: 'a b', role: admin, password_hash: '{h}' }}\n"),
                "accounts[0]: name must be",
            ),
            (
                format!(
                    "accounts:\n  - {{ name: a, role: admin, password_hash: '{h}' }}\n  - {{ name: a, role: viewer, password_hash: '{h}' }}\n"
                ),
                "accounts[1] (a): account `a` is listed twice",
            ),
            (
                "accounts:\n  - { name: a, role: admin, password: x }\n".to_string(),
                "line 2",
            ),
        ];
        for (text, expect) in cases {
            let p = write(&text);
            let e = Accounts::load(&p).expect_err(expect);
            assert!(e.contains(expect), "{e}");
            assert!(e.contains(&p.display().to_string()), "{e}");
            assert!(!e.contains("secret"), "never quotes a hash: {e}");
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn demo_accounts_exist_only_once_added() {
        let mut a = Accounts::none();
        assert!(a.verify("demo-admin", "demo-admin-password").is_none());
        a.add_demo().expect("demo accounts");
        for (name, role) in DEMO_ACCOUNTS {
            let got = a.verify(name, &format!("{name}-password")).expect(name);
            assert_eq!(got.role, role);
        }
        assert!(a.add_demo().is_err(), "no name twice");
    }
}
