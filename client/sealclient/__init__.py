"""sealclient: typed client library for the seal appliance (seald) and the `sealctl` CLI."""
