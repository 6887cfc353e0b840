"""Releases (contract §7.6): publication (`publication`), the disclosure audit
(`audit`, over the cross-classification of `profiles`), the published bodies
(`bodies`) and what readers are served (`render`)."""
