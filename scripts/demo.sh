#!/usr/bin/env bash
# The whole story on one machine: install, build SoftHSM tokens with the demo seals,
# start seald, submit a contract, approve it twice, unlock the token, download the
# sealed PDF and show pdfsig's verdict; then the same contract as one sealing job with
# its three seals. Everything lives in ./demo-work.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

WORK=${DEMO_WORK:-$PWD/demo-work}
PORT=${DEMO_PORT:-50443}
PY=.venv/bin/python
SEALCTL=.venv/bin/sealctl
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Build the demo tokens (official, contract and legal representative's seal), keys, PKI and config (softhsm-fixtures/)"
$PY softhsm-fixtures/build_fixtures.py "$WORK" --listen "127.0.0.1:$PORT" --force --with-legal-rep   # fresh tokens: the demo changes the PIN
export SOFTHSM2_CONF="$WORK/softhsm2.conf"
rm -rf "$WORK/state"   # a fresh ledger for each demo run (the fixtures are rebuilt too)
C="$WORK/clients"

step "2. Start seald (mutual TLS on 127.0.0.1:$PORT); its JSON log goes to $WORK/seald.log"
.venv/bin/seald --config "$WORK/seald.toml" >"$WORK/seald.log" 2>&1 &
SEALD_PID=$!
trap 'kill $SEALD_PID 2>/dev/null || true; wait $SEALD_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [ -s "$WORK/state/seald.port" ] && break
  kill -0 $SEALD_PID 2>/dev/null || { cat "$WORK/seald.log"; exit 1; }
  sleep 0.1
done
$SEALCTL --config "$C/zhang.wei.toml" seals

step "3. 张伟 (zhang.wei, requester) submits a purchase contract for the contract seal"
$PY scripts/make_demo_pdf.py "$WORK/contract.pdf"
RID=$($SEALCTL --config "$C/zhang.wei.toml" --json submit "$WORK/contract.pdf" \
        --seal contract --reason "与华东示例贸易有限公司签订年度采购合同" --category contract \
        --page 0 --x-mm 150 --y-mm 240 | $PY -c 'import json,sys; print(json.load(sys.stdin)["request_id"])')
$SEALCTL --config "$C/zhang.wei.toml" status "$RID"

step "4. The requester cannot approve; 李娜 (li.na) and 王芳 (wang.fang) approve what they downloaded"
$SEALCTL --config "$C/zhang.wei.toml" approve "$RID" || echo "(refused, as it must be)"
$SEALCTL --config "$C/li.na.toml" approve "$RID" --comment "金额与合同一致"
$SEALCTL --config "$C/wang.fang.toml" approve "$RID" --comment "同意"

step "5. 刘洋 (liu.yang, custodian) changes the token's initial PIN (R07), then unlocks it"
$SEALCTL --config "$C/liu.yang.toml" token status
INITIAL_PIN=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["seals"]["contract"]["user_pin"])' "$WORK/fixtures.json")
NEW_PIN="demo-$(date +%s)"   # a demo PIN; a custodian types theirs at the prompt instead
printf '%s\n%s\n' "$INITIAL_PIN" "$NEW_PIN" | $SEALCTL --config "$C/liu.yang.toml" token change-pin contract --pin-stdin
printf '%s\n' "$NEW_PIN" | $SEALCTL --config "$C/liu.yang.toml" token unlock contract --pin-stdin

step "6. The daemon seals; the requester downloads the sealed PDF"
for _ in $(seq 100); do
  state=$($SEALCTL --config "$C/zhang.wei.toml" --json status "$RID" | $PY -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$state" = "REQUEST_STATE_SIGNED" ] && break
  sleep 0.1
done
$SEALCTL --config "$C/zhang.wei.toml" download "$RID" -o "$WORK/contract.sealed.pdf"
$SEALCTL --config "$C/liu.yang.toml" token lock contract

step "7. Independent verdicts: pdfsig and qpdf --check"
pdfsig "$WORK/contract.sealed.pdf"
qpdf --check "$WORK/contract.sealed.pdf" | tail -1
$SEALCTL --config "$C/zhang.wei.toml" verify "$WORK/contract.sealed.pdf"

step "7b. The same contract as ONE sealing job (issue 16): the contract seal on （盖章）, the official seal as 骑缝章 across every page, the legal representative's seal beside （盖章）; one approval round, one signature per seal"
JOB=$($SEALCTL --config "$C/zhang.wei.toml" --json submit "$WORK/contract.pdf" \
        --reason "与华东示例贸易有限公司签订年度采购合同（合同章、骑缝章及法人章）" --category contract \
        --mark 'seal=contract pages=last anchor=（盖章）' \
        --mark 'seal=official cross=all y=150' \
        --mark 'seal=legal_rep pages=last anchor=（盖章） x=35 size=20' | $PY -c 'import json,sys; print(json.load(sys.stdin)["request_id"])')
$SEALCTL --config "$C/li.na.toml" approve "$JOB" --comment "三枚章与合同一致"
$SEALCTL --config "$C/wang.fang.toml" approve "$JOB" --comment "同意"
# The two tokens not used yet get their initial PIN changed first (R07), then all three
# are unlocked; the daemon signs once every seal's token is ready.
for SEAL in official legal_rep; do
  SEAL_PIN=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["seals"][sys.argv[2]]["user_pin"])' "$WORK/fixtures.json" "$SEAL")
  printf '%s\n%s\n' "$SEAL_PIN" "$NEW_PIN" | $SEALCTL --config "$C/liu.yang.toml" token change-pin "$SEAL" --pin-stdin
done
for SEAL in contract official legal_rep; do
  printf '%s\n' "$NEW_PIN" | $SEALCTL --config "$C/liu.yang.toml" token unlock "$SEAL" --pin-stdin
done
for _ in $(seq 300); do
  state=$($SEALCTL --config "$C/zhang.wei.toml" --json status "$JOB" | $PY -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$state" = "REQUEST_STATE_SIGNED" ] && break
  sleep 0.1
done
$SEALCTL --config "$C/zhang.wei.toml" status "$JOB"
$SEALCTL --config "$C/zhang.wei.toml" download "$JOB" -o "$WORK/contract.job.sealed.pdf"
for SEAL in contract official legal_rep; do
  $SEALCTL --config "$C/liu.yang.toml" token lock "$SEAL"
done
pdfsig "$WORK/contract.job.sealed.pdf"
qpdf --check "$WORK/contract.job.sealed.pdf" | tail -1
$SEALCTL --config "$C/zhang.wei.toml" verify "$WORK/contract.job.sealed.pdf"
# The demo's own check: three valid signatures, the last over the whole document.
valid=$(pdfsig "$WORK/contract.job.sealed.pdf" | grep -c 'Signature Validation: Signature is Valid' || true)
[ "$valid" -eq 3 ] || { echo "demo: expected 3 valid signatures in the sealing job, pdfsig found $valid" >&2; exit 1; }
pdfsig "$WORK/contract.job.sealed.pdf" | grep -q 'Total document signed' \
  || { echo "demo: the job's last signature does not cover the whole document" >&2; exit 1; }
echo "demo: sealing job verified: $valid valid signatures (contract, official, legal_rep), the last over the whole document"

step "8. 赵敏 (zhao.min, auditor) exports the evidence package; seald stops; it verifies offline"
$SEALCTL --config "$C/zhao.min.toml" evidence "$RID" --out "$WORK/contract.evidence.json"
kill $SEALD_PID; wait $SEALD_PID 2>/dev/null || true
$SEALCTL evidence verify "$WORK/contract.evidence.json" "$WORK/contract.sealed.pdf" \
        --ca "$WORK/pki/tls-ca.pem" --ca "$WORK/pki/seal-ca.pem" --ca "$WORK/state/audit/audit-cert.pem"

step "Done. Sealed PDF: $WORK/contract.sealed.pdf   Sealing job: $WORK/contract.job.sealed.pdf   Evidence: $WORK/contract.evidence.json   Daemon log: $WORK/seald.log"
