//! The data folder `wxkf serve` keeps its state in: the SQLite database, the secret that signs
//! agent tokens and the API key the JSON route accepts. Secrets are created on first run with
//! owner-only permissions, so that `wxkf token` and `wxkf api-key` work without configuration.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

const TOKEN_SECRET_FILE: &str = "token-secret";
const API_KEY_FILE: &str = "api-key";
const DATABASE_FILE: &str = "wxkf.sqlite3";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create data folder {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read or write {path}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is empty; delete it to have a new secret generated")]
    EmptySecret { path: PathBuf },
}

/// An opened data folder.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens the folder, creating it (and its secrets) when missing.
    pub fn open(root: &Path) -> Result<DataDir, DataDirError> {
        fs::create_dir_all(root).map_err(|source| DataDirError::Create {
            path: root.to_owned(),
            source,
        })?;
        let dir = DataDir {
            root: root.to_owned(),
        };
        dir.secret_or_create(TOKEN_SECRET_FILE)?;
        dir.secret_or_create(API_KEY_FILE)?;
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database_path(&self) -> PathBuf {
        self.root.join(DATABASE_FILE)
    }

    pub fn token_secret(&self) -> Result<SecretString, DataDirError> {
        self.secret_or_create(TOKEN_SECRET_FILE)
    }

    pub fn api_key(&self) -> Result<SecretString, DataDirError> {
        self.secret_or_create(API_KEY_FILE)
    }

    /// Reads a secret file, writing 32 random bytes as hex first when it does not exist.
    fn secret_or_create(&self, name: &str) -> Result<SecretString, DataDirError> {
        let path = self.root.join(name);
        let file_error = |source| DataDirError::File {
            path: path.clone(),
            source,
        };
        match fs::read_to_string(&path) {
            Ok(text) => {
                let text = text.trim();
                if text.is_empty() {
                    return Err(DataDirError::EmptySecret { path });
                }
                Ok(SecretString::from(text.to_owned()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let secret = hex_random(32);
                let mut file = create_private(&path).map_err(file_error)?;
                file.write_all(secret.as_bytes()).map_err(file_error)?;
                Ok(SecretString::from(secret))
            }
            Err(error) => Err(file_error(error)),
        }
    }
}

fn hex_random(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Creates a file readable by its owner only; fails if another process created it first.
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secrets_persist_across_opens() {
        let temp = tempfile::tempdir().unwrap();
        let first = DataDir::open(temp.path()).unwrap();
        let key = first.api_key().unwrap().expose_secret().to_owned();
        let second = DataDir::open(temp.path()).unwrap();
        assert_eq!(second.api_key().unwrap().expose_secret(), key);
        assert_eq!(key.len(), 64, "api key should be 32 bytes of hex");
        assert_ne!(
            second.token_secret().unwrap().expose_secret(),
            key.as_str(),
            "token secret and api key must differ"
        );
    }
}
