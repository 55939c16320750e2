//! Creates the TUN device (in the calling namespace or a named one) and gives it its addresses.

use std::fs::File;
use std::path::PathBuf;

use crate::command::{in_netns, run_ip};
use crate::{sys, Error, Prefix};

/// Creates TUN device `dev` inside `netns` (or the current namespace), brings it up and adds
/// `prefixes` (IPv6 without duplicate address detection, so it is usable at once). The device
/// disappears when the returned file is closed.
pub fn create_tun(
    dev: &str,
    netns: Option<&str>,
    prefixes: &[Prefix],
) -> Result<(File, String), Error> {
    let tun_error = |source| Error::Tun {
        dev: dev.to_owned(),
        source,
    };
    let (file, name) = match netns {
        None => sys::open_tun(dev).map_err(tun_error)?,
        Some(netns) => {
            let path = PathBuf::from("/run/netns").join(netns);
            // A TUN device is created in the namespace of the thread that creates it; the file
            // keeps working from any thread afterwards.
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        sys::enter_netns(&path).map_err(|source| Error::Netns {
                            name: netns.to_owned(),
                            source,
                        })?;
                        sys::open_tun(dev).map_err(tun_error)
                    })
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })?
        }
    };
    run_ip(&in_netns(netns, &["link", "set", "dev", &name, "up"]))?;
    for prefix in prefixes {
        let address = prefix.to_string();
        let mut args = vec!["addr", "add", &address, "dev", &name];
        if prefix.address.is_ipv6() {
            args.push("nodad");
        }
        run_ip(&in_netns(netns, &args))?;
    }
    Ok((file, name))
}
