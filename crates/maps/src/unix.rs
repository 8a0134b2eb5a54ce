//! `unix:passwd.byname` and `unix:group.byname`: the system's user and group
//! databases, answered in the passwd(5) and group(5) line formats.

use nix::unistd::{Group, User};

use crate::{Dict, DictError};

#[derive(Debug, Clone, Copy)]
enum Which {
    Passwd,
    Group,
}

/// A `unix:` table.
#[derive(Debug)]
pub struct UnixDict {
    name: String,
    which: Which,
}

impl UnixDict {
    pub fn open(map: &str) -> Result<UnixDict, DictError> {
        let which = match map {
            "passwd.byname" => Which::Passwd,
            "group.byname" => Which::Group,
            _ => return Err(DictError::Config(format!("unknown table: unix:{map}"))),
        };
        Ok(UnixDict {
            name: format!("unix:{map}"),
            which,
        })
    }
}

impl Dict for UnixDict {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&self, key: &str) -> Result<Option<String>, DictError> {
        let fail = |e: nix::Error| DictError::retry(&self.name, e);
        Ok(match self.which {
            Which::Passwd => User::from_name(key).map_err(fail)?.map(|u| {
                format!(
                    "{}:{}:{}:{}:{}:{}:{}",
                    u.name,
                    u.passwd.to_string_lossy(),
                    u.uid,
                    u.gid,
                    u.gecos.to_string_lossy(),
                    u.dir.display(),
                    u.shell.display()
                )
            }),
            Which::Group => Group::from_name(key).map_err(fail)?.map(|g| {
                format!(
                    "{}:{}:{}:{}",
                    g.name,
                    g.passwd.to_string_lossy(),
                    g.gid,
                    g.mem.join(",")
                )
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_nobody_else_does() {
        let d = UnixDict::open("passwd.byname").unwrap();
        let root = d.lookup("root").unwrap().unwrap();
        assert!(root.starts_with("root:x:0:0:"), "{root}");
        assert_eq!(d.lookup("no-such-user-here").unwrap(), None);
        let g = UnixDict::open("group.byname").unwrap();
        assert!(g.lookup("root").unwrap().unwrap().starts_with("root:x:0:"));
        assert!(UnixDict::open("hosts.byname").is_err());
    }
}
