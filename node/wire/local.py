"""Protobuf <-> core values for the LocalService (proto/bxnode/v1/local.proto).

Decoding is strict, as in :mod:`node.wire.convert`: an empty item, an unknown enum value
or a malformed value raises :class:`~node.core.errors.InvalidInput` with a stable reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from node.core.errors import InvalidInput
from node.core.model import DocumentQuery, ItemResult, PersonQuery, Query
from node.crossings.model import CrossingAnswer, CrossingQuestion
from node.wire import convert
from node.wire import crossings as cwire
from node.wire._gen import local_pb2 as lpb
from node.wire._gen import local_pb2_grpc as lpb_grpc

__all__ = [
    "LOCAL_API_SERVICE",
    "crossing_answers_to_pb",
    "document_from_pb",
    "item_result_to_pb",
    "items_from_pb",
    "lpb",
    "lpb_grpc",
    "person_from_pb",
    "questions_from_pb",
]

LOCAL_API_SERVICE: str = lpb.DESCRIPTOR.services_by_name["LocalService"].full_name


def document_from_pb(m: convert.pb.DocumentQuery) -> DocumentQuery:
    return DocumentQuery(number=m.number, issuing_state=m.issuing_state,
                         doc_type=m.document_type or "P")


def person_from_pb(m: convert.pb.PersonQuery) -> PersonQuery:
    return convert._person_from_pb(m)


def items_from_pb(items: Iterable[convert.pb.QueryItem]) -> list[Query]:
    out: list[Query] = []
    for i, it in enumerate(items):
        which = it.WhichOneof("item")
        try:
            if which == "document":
                out.append(document_from_pb(it.document))
            elif which == "person":
                out.append(person_from_pb(it.person))
            else:
                raise InvalidInput("the item names no document or person",
                                   reason="empty_item")
        except InvalidInput as exc:
            raise InvalidInput(f"item {i}: {exc.message}", reason=exc.reason) from None
    return out


def questions_from_pb(questions: Iterable[object]) -> list[CrossingQuestion]:
    out = []
    for i, m in enumerate(questions):
        assert isinstance(m, cwire.cpb.CrossingQuestion)
        try:
            which = m.WhichOneof("subject")
            subject: Query
            if which == "document":
                subject = document_from_pb(m.document)
            elif which == "person":
                subject = person_from_pb(m.person)
            else:
                raise InvalidInput("the question names no document or person",
                                   reason="empty_item")
            if m.direction not in cwire._DIR_FROM_PB:
                raise InvalidInput("a question needs a direction (entry or exit)",
                                   reason="bad_direction")
            out.append(CrossingQuestion(
                subject=subject, direction=cwire._DIR_FROM_PB[m.direction],
                window_start_ms=m.window_start_ms, window_end_ms=m.window_end_ms,
                bcp=m.bcp, section=m.section))
        except InvalidInput as exc:
            raise InvalidInput(f"question {i}: {exc.message}", reason=exc.reason) from None
    return out


def item_result_to_pb(r: ItemResult) -> convert.pb.ItemResult:
    return convert.pb.ItemResult(
        index=r.index, outcome=convert._OUTCOME_TO_PB[r.outcome], reference=r.reference,
        action=convert._ACTION_TO_PB[r.action] if r.action else
        convert.pb.ACTION_CODE_UNSPECIFIED, contact=r.contact, source_agency=r.source_agency)


def crossing_answers_to_pb(answers: Sequence[CrossingAnswer]) -> list[cwire.cpb.CrossingAnswer]:
    return [cwire.cpb.CrossingAnswer(
        index=a.index, outcome=cwire.cpb.CROSSING_OUTCOME_CONFIRMED if a.confirmed
        else cwire.cpb.CROSSING_OUTCOME_NOT_FOUND, bcp=a.bcp, crossed_at_ms=a.crossed_at_ms,
        resolution_minutes=a.resolution_minutes) for a in answers]
