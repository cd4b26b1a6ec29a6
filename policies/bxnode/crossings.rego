# bxnode crossing-confirmation policy: may this neighbour ask whether a traveller
# crossed at these of our border crossing points (BCPs)?
#
# Query: data.bxnode.crossings.decision.  Input (node/crossings/policy.py):
#   {"requester": {"node", "country", "agency", "operator"}, "purpose", "legal_basis",
#    "case_ref", "query": {"kind": "crossing", "batch_size", "window_ms",
#    "datasets": ["documents"|"persons"], "bcps": [{"code", "faces": [country...]}]},
#    "time_ms", "responder": {"node"}}
# Data: data.bxnode.crossing_agreements (policies/data.json).
# Yields exactly one object {"allow", "reasons", "resolution_minutes"}.
#
# Fail closed: every deny reason is "not <positive check>".
package bxnode.crossings

_day_ns := 86400000000000

pair_agreements := [a |
	some a in data.bxnode.crossing_agreements
	a.responder == input.responder.node
	a.requester == input.requester.node
]

in_force_at(a, time_ms) if {
	is_number(time_ms)
	t := time_ms * 1000000
	time.parse_ns("2006-01-02", a.valid_from) <= t
	t < time.parse_ns("2006-01-02", a.valid_until) + _day_ns
}

in_force := [a | some a in pair_agreements; in_force_at(a, input.time_ms)]

_latest_start := max({a.valid_from | some a in in_force})

current := [a | some a in in_force; a.valid_from == _latest_start]

agreement := current[0] if count(current) == 1

purpose_ok if input.purpose in agreement.purposes

datasets_ok if {
	count(input.query.datasets) > 0
	every d in input.query.datasets {
		d in agreement.datasets
	}
}

batch_ok if {
	is_number(input.query.batch_size)
	input.query.batch_size >= 1
	input.query.batch_size <= agreement.max_batch
}

window_ok if {
	is_number(input.query.window_ms)
	input.query.window_ms >= 0
	input.query.window_ms <= agreement.max_window_hours * 3600000
}

# A peer may only ask about our BCPs that face it (data: the node's BCP map).
facing_ok if {
	count(input.query.bcps) > 0
	every b in input.query.bcps {
		input.requester.country in b.faces
	}
}

legal_basis_ok if {
	trim_space(input.legal_basis) != ""
	trim_space(input.case_ref) != ""
}

reasons contains "no_agreement" if count(pair_agreements) == 0

reasons contains "agreement_not_in_force" if {
	count(pair_agreements) > 0
	count(in_force) == 0
}

reasons contains "agreement_ambiguous" if count(current) > 1

reasons contains "purpose_not_agreed" if {
	is_object(agreement)
	not purpose_ok
}

reasons contains "dataset_not_agreed" if {
	is_object(agreement)
	not datasets_ok
}

reasons contains "batch_exceeds_agreement" if {
	is_object(agreement)
	not batch_ok
}

reasons contains "window_exceeds_agreement" if {
	is_object(agreement)
	not window_ok
}

reasons contains "bcp_not_facing_requester" if not facing_ok

reasons contains "legal_basis_required" if not legal_basis_ok

allow if {
	is_object(agreement)
	count(reasons) == 0
}

default decision := {"allow": false, "reasons": ["policy_error"], "resolution_minutes": 0}

decision := {"allow": true, "reasons": [], "resolution_minutes": agreement.time_resolution_minutes} if allow

decision := {"allow": false, "reasons": sort(reasons), "resolution_minutes": 0} if not allow
