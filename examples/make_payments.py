#!/usr/bin/env python3
"""Regenerates payments-incident.json: 60 deterministic transactions and
the incident-triage code. Run it after editing CODE or the data recipe."""
import json
import random
from pathlib import Path

CODE = '''\
# Payments incident triage: failed-payment rate, chargeback alerts,
# average and p95 latency, and a severity. Pure stdlib (math, statistics).
import math
import statistics

txns = input_data["transactions"]
threshold = input_data["failed_rate_p1_threshold"]
total = len(txns)

failed = [t for t in txns if t["status"] == "failed"]
chargebacks = [t for t in txns if t["status"] == "chargeback"]
failed_rate = len(failed) / total if total else 0.0

# p95 by the nearest-rank method: the smallest value with 95 % at or below it
latencies = sorted(t["latency_ms"] for t in txns)
p95 = latencies[max(1, math.ceil(0.95 * total)) - 1]

alerts = {}
for t in chargebacks:
    a = alerts.setdefault(t["merchant"], {"merchant": t["merchant"], "count": 0, "amount_cents": 0})
    a["count"] += 1
    a["amount_cents"] += t["amount_cents"]

failure_codes = {}
for t in failed:
    failure_codes[t["error_code"]] = failure_codes.get(t["error_code"], 0) + 1

if failed_rate >= threshold:
    severity = "P1"
elif chargebacks:
    severity = "P2"
else:
    severity = "P3"

print(f"{total} transactions, {len(failed)} failed ({failed_rate:.1%}), "
      f"{len(chargebacks)} chargebacks, p95 {p95} ms -> {severity}")

result = {
    "transactions": total,
    "failed": len(failed),
    "failed_rate": round(failed_rate, 4),
    "failure_codes": failure_codes,
    "chargeback_alerts": sorted(alerts.values(), key=lambda a: (-a["count"], a["merchant"])),
    "latency_ms": {"average": round(statistics.mean(latencies), 1), "p95": p95},
    "severity": severity,
}
'''

SCHEMA = {
    "type": "object",
    "required": ["transactions", "failed", "failed_rate", "chargeback_alerts", "latency_ms", "severity"],
    "additionalProperties": False,
    "properties": {
        "transactions": {"type": "integer", "minimum": 1},
        "failed": {"type": "integer", "minimum": 0},
        "failed_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "failure_codes": {"type": "object"},
        "chargeback_alerts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["merchant", "count", "amount_cents"],
                "properties": {
                    "merchant": {"type": "string"},
                    "count": {"type": "integer", "minimum": 1},
                    "amount_cents": {"type": "integer", "minimum": 0},
                },
            },
        },
        "latency_ms": {
            "type": "object",
            "required": ["average", "p95"],
            "properties": {"average": {"type": "number", "minimum": 0}, "p95": {"type": "number", "minimum": 0}},
        },
        "severity": {"enum": ["P1", "P2", "P3"]},
    },
}


def transactions():
    rng = random.Random(20261123)
    merchants = ["acme-books", "blue-bikes", "cafe-nero", "delta-air", "echo-audio", "fern-florist"]
    out = []
    for i in range(60):
        out.append({
            "id": f"tx_{i + 1:04d}",
            "merchant": merchants[i % len(merchants)],
            "amount_cents": rng.randrange(500, 250000),
            "currency": "EUR",
            "status": "succeeded",
            "latency_ms": rng.randrange(80, 420),
        })
    for i, code in ((7, "card_declined"), (23, "issuer_unavailable"), (41, "issuer_unavailable")):
        out[i].update(status="failed", error_code=code, latency_ms=out[i]["latency_ms"] + 2400)
    for i in (9, 21, 44):
        out[i]["status"] = "chargeback"
    return out


def main():
    job = {
        "id": "payments-incident-2026-11-23",
        "code": CODE,
        "input": {"failed_rate_p1_threshold": 0.03, "transactions": transactions()},
        "limits": {"wall_ms": 5000, "memory_mb": 128},
        "output_schema": SCHEMA,
    }
    Path(__file__).with_name("payments-incident.json").write_text(json.dumps(job, indent=1) + "\n")


if __name__ == "__main__":
    main()
