"""The coupon simulation's shoppers: the synthetic generator's returning shoppers and catalogue, played as visits
whose clicks carry ids, in the model's vocabulary, with the order left to the simulation's decision."""

from __future__ import annotations

from bench.coupon.shoppers import build_shoppers, population_facts, trained_actions
from model.features import ACTIONS

TAOBAO_ACTIONS = frozenset({"view_product", "add_cart", "concerned", "order"})


def test_shoppers_return_with_ids_in_the_models_vocabulary() -> None:
    shoppers = build_shoppers(3000, seed=1, actions=TAOBAO_ACTIONS)
    facts = population_facts(shoppers)
    assert facts["returning_shoppers"] > facts["shoppers"] // 10, facts
    assert facts["carted_visits"] > 100, facts
    for shopper in shoppers:
        stamps = [visit.clicks[0]["ts"] for visit in shopper.visits]
        assert stamps == sorted(stamps), "a shopper's visits are played in time order"
        for visit in shopper.visits:
            assert all(c["user_id"] == shopper.user_id for c in visit.clicks)
            assert {c["action"] for c in visit.clicks} <= TAOBAO_ACTIONS - {"order"}, "orders are the decision's"
            assert all(c["item_id"].startswith("i") and c["category_id"].startswith("c") for c in visit.clicks)
            carted = [c for c in visit.clicks if c["action"] == "add_cart"]
            assert (visit.order is None) == (not carted)
            if visit.order is not None:  # it buys what it carted first, after its last click
                assert visit.order["item_id"] == carted[0]["item_id"] and visit.order["action"] == "order"
                assert visit.order["ts"] > visit.clicks[-1]["ts"] and visit.order["user_id"] == shopper.user_id
    lengths = [len(sh.visits) for sh in shoppers]
    assert lengths == sorted(lengths, reverse=True), "the longest chains start first"


def test_browse_share_thins_only_the_visits_that_never_cart() -> None:
    uncapped = 10**6  # the cap on a shopper's visits would drop different visits from the two
    every = population_facts(build_shoppers(2000, seed=2, actions=TAOBAO_ACTIONS, max_visits=uncapped))
    carted_only = population_facts(build_shoppers(2000, seed=2, actions=TAOBAO_ACTIONS, browse_share=0.0,
                                                   max_visits=uncapped))
    assert carted_only["carted_visits"] == every["carted_visits"] == carted_only["visits"] < every["visits"]


def test_the_vocabulary_is_the_cards_slot_coverage() -> None:
    assert trained_actions({"view_product": 10, "add_cart": 2, "home": 0}) == {"view_product", "add_cart"}
    assert trained_actions({}) == frozenset(ACTIONS)
