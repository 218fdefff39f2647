//! The providers this binary can run, by the name users pass to `--provider`.

use capstan_runtime::Provider;

/// Provider settings that come from the manager's flags.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bootstrap_token_ttl: std::time::Duration,
    /// How long an infrastructure provider's cloud operation may run before it is given up on.
    pub operation_timeout: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bootstrap_token_ttl: capstan_kubeadm::KubeadmBootstrapProvider::default().options.token_ttl,
            operation_timeout: capstan_lifecycle::DEFAULT_OPERATION_TIMEOUT,
        }
    }
}

/// Every provider compiled into this binary.
pub fn all(settings: &Settings) -> Vec<Box<dyn Provider>> {
    let mut kubeadm = capstan_kubeadm::KubeadmBootstrapProvider::default();
    kubeadm.options.token_ttl = settings.bootstrap_token_ttl;
    vec![
        Box::new(capstan_dcs::lifecycle_provider().with_operation_timeout(settings.operation_timeout)),
        Box::new(capstan_hcs::lifecycle_provider().with_operation_timeout(settings.operation_timeout)),
        Box::new(capstan_vsphere::lifecycle_provider().with_operation_timeout(settings.operation_timeout)),
        Box::new(capstan_standalone::Standalone::default()),
        Box::new(kubeadm),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no provider given: pass --provider with one of: {known}")]
    Empty { known: String },
    #[error("unknown provider {name:?}: known providers are {known}")]
    Unknown { name: String, known: String },
}

/// The providers named on the command line, in that order, each once.
pub fn select(names: &[String], settings: &Settings) -> Result<Vec<Box<dyn Provider>>, SelectError> {
    select_from(all(settings), names)
}

fn select_from(mut available: Vec<Box<dyn Provider>>, names: &[String]) -> Result<Vec<Box<dyn Provider>>, SelectError> {
    let known = || {
        let names: Vec<&str> = all(&Settings::default()).iter().map(|p| p.name()).collect();
        if names.is_empty() {
            "(none compiled in)".to_string()
        } else {
            names.join(", ")
        }
    };
    if names.is_empty() {
        return Err(SelectError::Empty { known: known() });
    }
    let mut chosen = Vec::new();
    for name in names {
        // Accept both `--provider a,b` and repeated flags.
        for name in name.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if chosen.iter().map(Box::as_ref).any(|p: &dyn Provider| p.name() == name) {
                continue;
            }
            match available.iter().position(|p| p.name() == name) {
                Some(i) => chosen.push(available.remove(i)),
                None => {
                    return Err(SelectError::Unknown {
                        name: name.to_string(),
                        known: known(),
                    });
                }
            }
        }
    }
    Ok(chosen)
}
