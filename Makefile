# Xen end-to-end lab (root, qemu): one boot per Xen version. See docs/xen-lab.md.
.PHONY: xen-lab
xen-lab:
	tests/xen-lab/run.sh --suite bookworm
	tests/xen-lab/run.sh --suite trixie
