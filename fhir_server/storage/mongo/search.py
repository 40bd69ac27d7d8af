"""Running a search plan on MongoDB: the page in storage order (``rid``, keyset-paged on
its unique index) or sorted (an aggregation adds each sort key, missing values last in
either direction, and pages by position), the total, and the includes.

Sorted pages are paged by position (the cursor holds the offset): stateless, but a write
between two pages may shift an entry across the page border. Pages in storage order are
exact (the cursor holds the last ``rid``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from fhir_server.search.plan import Cursor, Include, Node, Query, SortKey
from fhir_server.storage.mongo.compile import Filter, MongoCompiler, either, searched
from fhir_server.storage.mongo.explain import explain
from fhir_server.storage.mongo.layout import RESOURCES, Database
from fhir_server.storage.port import Fact, Match, SearchPage

COLUMN_SORTS = {"_lastUpdated": "updated", "_id": "id"}
SORT_COLUMNS = {"sort": "value", "string": "norm", "token": "code",
                "reference": "target_id", "uri": "uri", "date": "low", "number": "value",
                "quantity": "value"}
OFFSET = "offset"  # a sorted page's cursor: ("offset", position of the match)
FIELDS = {"type": 1, "id": 1, "rid": 1, "content": 1}


class MongoSearch:
    """Runs plans on ``resources`` (inside a commit's transaction, given its session)."""

    def __init__(self, db: Database, max_ms: int,
                 session: AsyncClientSession | None = None, explained: bool = False) -> None:
        self.db, self.max_ms, self.session = db, max_ms, session
        self.explained = explained and session is None  # (no explain inside transactions)
        self.compiler = MongoCompiler(self._find)

    async def _find(self, where: Filter, field: str) -> list[Any]:
        """One field of every resource a filter matches (the inner search of a chain)."""
        head, _, rest = field.partition(".")
        found = self.db[RESOURCES].find(where, {field: 1}, session=self.session).max_time_ms(
            self.max_ms)
        return [document.get(head, {}).get(rest) if rest else document.get(head)
                async for document in found]

    async def filter(self, types: tuple[str, ...], where: tuple[Node, ...]) -> Filter:
        return searched(list(types), await self.compiler.where(where))

    async def facts(self, query: Query, wanted: Sequence[Fact]) -> list[tuple[Any, ...]]:
        """Each match's id and wanted index values, picked from its index entries."""
        where = await self.filter(query.types, query.where)
        tables = {f"idx.{fact.table}": 1 for fact in wanted}
        found = self.db[RESOURCES].find(where, {"id": 1, **tables}, session=self.session
                                        ).max_time_ms(self.max_ms)
        return [(document["id"], *(_fact(document.get("idx") or {}, fact) for fact in wanted))
                async for document in found]

    async def run(self, query: Query) -> SearchPage:
        where = await self.filter(query.types, query.where)
        if query.sort:
            matches, has_next, has_previous = await self._sorted(query, where)
        else:
            matches, has_next, has_previous = await self._by_rid(query, where)
        total = None
        if query.total:
            total = await self.db[RESOURCES].count_documents(where, maxTimeMS=self.max_ms,
                                                             session=self.session)
            if self.explained:
                await explain(self.db, {"count": RESOURCES, "query": where})
        elif query.cursor is None and not has_next:
            total = len(matches)
        included, hit = await self._includes(query, matches)
        return SearchPage(matches, included, total, has_next, has_previous, hit)

    async def _by_rid(self, query: Query, where: Filter) -> tuple[list[Match], bool, bool]:
        cursor = query.cursor
        backwards = bool(cursor and cursor.backwards)
        if cursor is not None:
            where = {**where, "rid": {"$lt" if backwards else "$gt": cursor.rid}}
        order = -1 if backwards else 1
        found = await self.db[RESOURCES].find(where, FIELDS, session=self.session).sort(
            "rid", order).limit(query.count + 1).max_time_ms(self.max_ms).to_list()
        if self.explained:
            await explain(self.db, {"find": RESOURCES, "filter": where, "sort": {"rid": order},
                                    "limit": query.count + 1, "projection": FIELDS})
        more = len(found) > query.count
        found = found[: query.count]
        if backwards:
            found.reverse()
        matches = [_match(d, Cursor((), d["rid"])) for d in found]
        return (matches, True, more) if backwards else (matches, more, cursor is not None)

    async def _sorted(self, query: Query, where: Filter) -> tuple[list[Match], bool, bool]:
        cursor = query.cursor
        start = 0
        if cursor is not None and cursor.values and cursor.values[0] == OFFSET:
            start = cursor.values[1] + 1 if not cursor.backwards \
                else max(cursor.values[1] - query.count, 0)
        keys, missing, order = {}, {}, {}
        for index, key in enumerate(query.sort):
            keys[f"s{index}"] = self._sort_value(key)
            missing[f"m{index}"] = {"$eq": [{"$ifNull": [f"$s{index}", None]}, None]}
            order[f"m{index}"] = 1  # missing values last, in either direction
            order[f"s{index}"] = -1 if key.descending else 1
        order["rid"] = 1
        limit = query.count if cursor is not None and cursor.backwards else query.count + 1
        pipeline: list[dict[str, Any]] = [
            {"$match": where}, {"$addFields": keys}, {"$addFields": missing},
            {"$sort": order}, {"$skip": start}, {"$limit": limit}, {"$project": FIELDS}]
        found = await (await self.db[RESOURCES].aggregate(
            pipeline, maxTimeMS=self.max_ms, session=self.session)).to_list()
        if self.explained:
            await explain(self.db, {"aggregate": RESOURCES, "pipeline": pipeline,
                                    "cursor": {}})
        matches = [_match(d, Cursor((OFFSET, start + i), d["rid"]))
                   for i, d in enumerate(found[: query.count])]
        if cursor is not None and cursor.backwards:
            return matches, True, start > 0
        return matches, len(found) > query.count, start > 0

    @staticmethod
    def _sort_value(key: SortKey) -> Any:
        """The expression of a sort key's value (the lowest, for a parameter of several)."""
        if key.param in COLUMN_SORTS:
            return f"${COLUMN_SORTS[key.param]}"
        entries = {"$filter": {"input": {"$ifNull": [f"$idx.{key.table}", []]},
                               "cond": {"$eq": ["$$this.k", key.param]}}}
        return {"$min": {"$map": {"input": entries,
                                  "in": f"$$this.{SORT_COLUMNS.get(key.table, 'value')}"}}}

    # -- includes ------------------------------------------------------------------------

    async def _includes(self, query: Query, matches: list[Match]) -> tuple[list[Match], bool]:
        if not query.includes or not matches:
            return [], False
        visible = await self.compiler.where(query.visible)
        seen = {(m.resource_type, m.id) for m in matches}
        included: list[Match] = []
        frontier, first = matches, True
        while frontier:
            found: list[Match] = []
            for include in query.includes:
                if include.iterate or first:
                    found += await self._include(include, frontier, visible)
            new = []
            for match in found:
                if (match.resource_type, match.id) not in seen:
                    seen.add((match.resource_type, match.id))
                    new.append(match)
            if len(included) + len(new) > query.include_limit:
                return included + new[: query.include_limit - len(included)], True
            included += new
            frontier = [m for m in new if any(i.iterate for i in query.includes)]
            first = False
        return included, False

    async def _include(self, include: Include, sources: list[Match],
                       visible: Filter) -> list[Match]:
        params = list(include.params)
        if include.reverse:
            relevant = [m for m in sources if not include.target_type
                        or m.resource_type == include.target_type]
            if not relevant:
                return []
            ids: dict[str, list[str]] = {}
            for m in relevant:
                ids.setdefault(m.resource_type, []).append(m.id)
            pointing = either([{"idx.reference": {"$elemMatch": {
                "k": {"$in": params}, "target_type": rtype, "target_id": {"$in": found}}}}
                for rtype, found in ids.items()])
            where = searched([include.source_type], {"$and": [visible, pointing]}
                             if visible else pointing)
        else:
            keys = [f"{m.resource_type}/{m.id}" for m in sources
                    if m.resource_type == include.source_type]
            if not keys:
                return []
            targets = set()
            async for document in self.db[RESOURCES].find(
                    {"_id": {"$in": keys}}, {"idx.reference": 1}, session=self.session):
                for entry in document.get("idx", {}).get("reference", ()):
                    if entry["k"] in params and entry["target_id"] and (
                            not include.target_type
                            or entry["target_type"] == include.target_type):
                        targets.add(f"{entry['target_type']}/{entry['target_id']}")
            if not targets:
                return []
            where = searched([], visible, {"_id": {"$in": sorted(targets)}})
        found = self.db[RESOURCES].find(where, FIELDS, session=self.session).sort(
            "rid", 1).max_time_ms(self.max_ms)
        return [_match(d, Cursor((), d["rid"])) async for d in found]


def _fact(index: dict[str, list[dict[str, Any]]], fact: Fact) -> Any:
    for entry in index.get(fact.table) or ():
        if entry["k"] == fact.param:
            if fact.table == "reference":
                return f"{entry['target_type']}/{entry['target_id']}"
            return entry["value"]
    return None


def _match(document: dict[str, Any], cursor: Cursor) -> Match:
    return Match(document["type"], document["id"], bytes(document["content"]), cursor)
