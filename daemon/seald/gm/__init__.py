"""National (GM/T, GB/T) cryptography: SM2/SM3 primitives, SM2 certificates, GB/T 38540 seals.

``sm2``: keys, signatures and the GM/T 0009 preprocessing (Z value) on tongsuopy;
``certs``: SM2-with-SM3 X.509 certificates and CSRs built with asn1crypto;
``ses``: the GB/T 38540-2020 ``SES_Seal`` / ``SES_Signature`` structures.
"""
