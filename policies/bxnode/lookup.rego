# bxnode lookup policy: may this requester ask this node this question?
#
# Query: data.bxnode.lookup.decision.  Input: PolicyInput.as_document()
# (node/core/model.py).  Data: data.bxnode.agreements (policies/data.json).
# Always yields exactly one object {"allow", "reasons", "disclose"}; see
# policies/README.md for every reason code.
#
# Fail closed by construction: every deny reason is written as
# "not <positive check>", so a missing or mistyped input field makes the check
# fail and the reason fire, never silently pass.
package bxnode.lookup

_day_ns := 86400000000000

# Every agreement this responder has with this requester.
pair_agreements := [a |
	some a in data.bxnode.agreements
	a.responder == input.responder.node
	a.requester == input.requester.node
]

# Validity dates are UTC calendar days, both ends inclusive.
in_force_at(a, time_ms) if {
	is_number(time_ms)
	t := time_ms * 1000000
	time.parse_ns("2006-01-02", a.valid_from) <= t
	t < time.parse_ns("2006-01-02", a.valid_until) + _day_ns
}

in_force := [a | some a in pair_agreements; in_force_at(a, input.time_ms)]

# Several agreements for one pair (a renewal, an amendment): the one in force
# governs; if several are in force, the one that started last supersedes the
# others.  Two in force from the same day is a data error: agreement_ambiguous.
_latest_start := max({a.valid_from | some a in in_force})

current := [a | some a in in_force; a.valid_from == _latest_start]

agreement := current[0] if count(current) == 1

# Positive checks against the governing agreement.
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

quota_ok if {
	is_number(input.usage.items_today)
	input.usage.items_today >= 0
	input.usage.items_today + input.query.batch_size <= agreement.daily_quota
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

# The agreement-bound checks fire only when one agreement governs; without one,
# no_agreement / agreement_not_in_force / agreement_ambiguous already denies.
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

reasons contains "quota_exhausted" if {
	is_object(agreement)
	not quota_ok
}

reasons contains "legal_basis_required" if not legal_basis_ok

allow if {
	is_object(agreement)
	count(reasons) == 0
}

default disclose := []

disclose := sort(agreement.disclose) if allow

default decision := {"allow": false, "reasons": ["policy_error"], "disclose": []}

decision := {"allow": true, "reasons": [], "disclose": disclose} if allow

decision := {"allow": false, "reasons": sort(reasons), "disclose": []} if not allow

# The governing agreement's daily quota, for the node's decision cache
# (node/policy/cache.py): decisions are cached with usage.items_today = 0 and the
# quota rule above is applied to the real usage with this limit.  "allow" only
# says whether one agreement governs; -1 stands for a quota that is not a number
# (every request then exhausts it, as quota_ok above can never hold).
default quota_limit := {"allow": false}

quota_limit := {"allow": true, "daily_quota": agreement.daily_quota} if {
	is_object(agreement)
	is_number(agreement.daily_quota)
}

quota_limit := {"allow": true, "daily_quota": -1} if {
	is_object(agreement)
	not is_number(agreement.daily_quota)
}

# How person lookups match (node/matching): the score a candidate needs and how many
# candidates one query may consider, per agreement ("match_threshold", "max_candidates"),
# with the defaults below.  Read only for requests the lookup decision allowed.
default matching := {"allow": false}

matching := {
	"allow": true,
	"threshold": object.get(agreement, "match_threshold", 0.73),
	"max_candidates": object.get(agreement, "max_candidates", 10),
} if is_object(agreement)

# Fairness between peers (node/server/limits.py): how fast ("rate_per_s", refilling a
# bucket of "burst" requests) and how many at once ("max_in_flight") this requester may
# call this node, per agreement, with the defaults below.  A requester with no governing
# agreement ("allow": false) gets the node's tight limits for strangers (its requests are
# refused anyway, but must not crowd out the others: node/server/limits.py STRANGER).
# Read by the server edge per requester and UTC day.
default rate_limit := {"allow": false}

rate_limit := {
	"allow": true,
	"rate_per_s": object.get(agreement, "rate_per_s", 5000),
	"burst": object.get(agreement, "burst", 10000),
	"max_in_flight": object.get(agreement, "max_in_flight", 256),
} if is_object(agreement)

# What this package reads of its input, and how: node/policy/cache.py caches decisions
# on exactly these, and refuses to start when a module of this package reads an input
# path that is not listed here.  Modes: "value" (the value itself), "blank" (only
# whether it is blank), "utc_day" (only the UTC day), "quota" (only through quota_ok
# against quota_limit).  A declaration, not a decision: "allow" is false.
cache_inputs := {"allow": false, "reasons": ["declaration"], "inputs": {
	"requester.node": "value",
	"responder.node": "value",
	"time_ms": "utc_day",
	"purpose": "value",
	"query.datasets": "value",
	"query.batch_size": "value",
	"usage.items_today": "quota",
	"legal_basis": "blank",
	"case_ref": "blank",
}}
