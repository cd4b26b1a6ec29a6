# bxnode follow-up policy (the second of Prüm's two steps): which fields of the
# record behind a HIT may be released to this requester for this purpose?
#
# Query: data.bxnode.followup.decision.  Input (node/followup/policy.py):
#   {"requester": {"node", "country", "agency", "operator"}, "purpose", "legal_basis",
#    "case_ref", "followup": {"record_kind": "document"|"person", "fields": [...]},
#    "time_ms", "responder": {"node"}}
# Data: data.bxnode.followup_agreements (policies/data.json), each with
#   "release": {<purpose>: {"document": [fields], "person": [fields]}}.
# Yields exactly one object {"allow", "reasons", "fields", "officers_required"}: on
# allow, "fields" is every field policy allows for this requester, purpose and record
# kind (an operator's approval may narrow it, never widen it), and
# "officers_required" is 2 when the agreement sets "four_eyes": true (a second,
# different followup_desk officer must confirm a release before anything leaves),
# else 1.
#
# Fail closed: every deny reason is "not <positive check>".
package bxnode.followup

_day_ns := 86400000000000

pair_agreements := [a |
	some a in data.bxnode.followup_agreements
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

purpose_ok if is_object(agreement.release[input.purpose])

allowed_fields := agreement.release[input.purpose][input.followup.record_kind]

fields_given if count(input.followup.fields) > 0

fields_ok if {
	fields_given
	every f in input.followup.fields {
		f in allowed_fields
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

reasons contains "no_fields_requested" if not fields_given

reasons contains "field_not_allowed" if {
	is_object(agreement)
	purpose_ok
	fields_given
	not fields_ok
}

reasons contains "legal_basis_required" if not legal_basis_ok

allow if {
	is_object(agreement)
	count(reasons) == 0
}

officers_required := 2 if agreement.four_eyes == true

default officers_required := 1

default decision := {"allow": false, "reasons": ["policy_error"], "fields": [], "officers_required": 1}

decision := {
	"allow": true, "reasons": [], "fields": sort(allowed_fields),
	"officers_required": officers_required,
} if allow

decision := {"allow": false, "reasons": sort(reasons), "fields": [], "officers_required": 1} if not allow
