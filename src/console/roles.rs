//! Who may do what in the console: the four roles (`viewer` < `operator` < `privacy` < `admin`),
//! the actions a page can ask for, and [`allows`], the one check every handler makes. In: a role
//! and an action. Out: yes or no. The table here is the one docs/console.md shows (a test there
//! keeps them equal); it must never grant an action by a role's name alone somewhere else.

use std::fmt;
use std::str::FromStr;

/// An operator's role, from least to most trusted; each has every right of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Metadata only: flow, traces, decisions, reasons; never a body, never a replay.
    Viewer,
    /// A viewer who may also preview and replay dead-lettered and quarantined messages.
    Operator,
    /// Privacy officer (個人情報保護担当): an operator who may also read message bodies, each
    /// view with a stated reason and audited.
    Privacy,
    /// Administrator: every right, including managing the console's accounts.
    Admin,
}

impl Role {
    /// Every role, least trusted first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Privacy, Role::Admin];

    /// The name used in the accounts file and on the pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Privacy => "privacy",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("role `{s}` is not one of viewer, operator, privacy, admin"))
    }
}

/// Something a console page does on an operator's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See metadata: the flow, counts, envelope ids, traces, consent decisions, reasons.
    ViewMetadata,
    /// Search by a person's 保険者番号:被保険者番号 (hashed before the lookup; audited).
    SearchPerson,
    /// Preview and replay dead-lettered or quarantined messages (audited).
    Replay,
    /// Read a message's original body and canonical documents (with a stated reason; audited).
    ViewBody,
    /// Add, change or remove console accounts.
    ManageAccounts,
}

impl Action {
    /// Every action, in the order of the docs' table.
    pub const ALL: [Action; 5] = [
        Action::ViewMetadata,
        Action::SearchPerson,
        Action::Replay,
        Action::ViewBody,
        Action::ManageAccounts,
    ];

    /// The name in the docs' table and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ViewMetadata => "view-metadata",
            Action::SearchPerson => "search-person",
            Action::Replay => "replay",
            Action::ViewBody => "view-body",
            Action::ManageAccounts => "manage-accounts",
        }
    }

    /// The least trusted role that may do it.
    fn least_role(self) -> Role {
        match self {
            Action::ViewMetadata | Action::SearchPerson => Role::Viewer,
            Action::Replay => Role::Operator,
            Action::ViewBody => Role::Privacy,
            Action::ManageAccounts => Role::Admin,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// May `role` do `action`? The one check: every handler asks it, never compares roles itself.
pub fn allows(role: Role, action: Action) -> bool {
    role >= action.least_role()
}

/// The table of docs/console.md: a header row of roles, then one row per action with `yes` or
/// `—` per role.
pub fn markdown_table() -> String {
    let mut out = String::from("| action |");
    for r in Role::ALL {
        out.push_str(&format!(" `{r}` |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(Role::ALL.len()));
    out.push('\n');
    for a in Action::ALL {
        out.push_str(&format!("| `{a}` |"));
        for r in Role::ALL {
            out.push_str(if allows(r, a) { " yes |" } else { " — |" });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_exactly_the_rights_of_the_contract() {
        let yes = |r: Role| {
            Action::ALL
                .into_iter()
                .filter(|&a| allows(r, a))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            yes(Role::Viewer),
            [Action::ViewMetadata, Action::SearchPerson]
        );
        assert_eq!(
            yes(Role::Operator),
            [Action::ViewMetadata, Action::SearchPerson, Action::Replay]
        );
        assert_eq!(
            yes(Role::Privacy),
            [
                Action::ViewMetadata,
                Action::SearchPerson,
                Action::Replay,
                Action::ViewBody
            ]
        );
        assert_eq!(yes(Role::Admin), Action::ALL);
    }

    #[test]
    fn roles_read_back_from_their_names_and_unknown_ones_are_named() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        let e = "root".parse::<Role>().unwrap_err();
        assert!(e.contains("`root`") && e.contains("privacy"), "{e}");
    }

    #[test]
    fn docs_console_md_shows_the_table_the_code_enforces() {
        let doc = include_str!("../../docs/console.md");
        assert!(
            doc.contains(&markdown_table()),
            "docs/console.md's role table is stale; put in:\n{}",
            markdown_table()
        );
    }
}
