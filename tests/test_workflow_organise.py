import pytest
from sqlalchemy import select

from morphocluster.store import Event, Object
from morphocluster.workflow import WorkflowError, organise, undo
from test_workflow_setup import CLASSES, check_counts, member_set, n_events, node_row, wf  # noqa: F401


def _approved(wf, cls, sl, name, parent_id=None):
    return wf.make_node(wf.by_class[CLASSES[cls]][sl], status="approved", name=name,
                        parent_id=parent_id, member_status="validated")


def test_name_and_undo(wf):
    p = wf.project
    nid = _approved(wf, 0, slice(0, 5), None)
    organise.name(p, wf.A, nid, "  sagitta ")
    assert node_row(p, nid).name == "sagitta"
    assert organise.object_label(p, wf.by_class[CLASSES[0]][0]) == "sagitta"
    organise.name(p, wf.A, nid, "chaetognath")
    undo.undo_last(p, wf.A)
    assert node_row(p, nid).name == "sagitta"
    undo.undo_last(p, wf.A)
    assert node_row(p, nid).name is None


def test_known_names_mix_nodes_and_imported_categories_and_disambiguate(wf):
    p = wf.project
    cop = _approved(wf, 1, slice(0, 3), "Copepoda")
    fish = _approved(wf, 2, slice(0, 3), "Fish")
    _approved(wf, 1, slice(3, 6), "egg", parent_id=cop)
    _approved(wf, 2, slice(3, 6), "egg", parent_id=fish)
    names = organise.known_names(p, "")
    assert "egg<Copepoda" in names and "egg<Fish" in names
    assert "trichodesmium_puff" in names  # an imported category
    assert organise.known_names(p, "CHAE") == ["chaetognath_sagitta"]
    labels = organise.labels(p)
    assert labels[wf.by_class[CLASSES[1]][4]] == "egg<Copepoda"
    assert labels[wf.by_class[CLASSES[2]][4]] == "egg<Fish"
    assert wf.by_class[CLASSES[0]][0] not in labels


def test_move_refuses_cycles_and_undo(wf):
    p = wf.project
    a = _approved(wf, 0, slice(0, 3), "a")
    b = _approved(wf, 1, slice(0, 3), "b", parent_id=a)
    with pytest.raises(WorkflowError, match="under itself or a node below it"):
        organise.move(p, wf.A, a, b)
    cand = wf.make_node(wf.by_class[CLASSES[2]][:3])
    with pytest.raises(WorkflowError, match="is candidate \\(now\\), not validated"):  # not under a candidate
        organise.move(p, wf.A, b, cand)
    organise.move(p, wf.A, b, None)
    assert node_row(p, b).parent_id is None
    undo.undo_last(p, wf.A)
    assert node_row(p, b).parent_id == a


def test_umbrella_tree_counts_and_undo(wf):
    p = wf.project
    a = _approved(wf, 1, slice(0, 4), "oithona eggs")
    b = _approved(wf, 1, slice(4, 10), "oithona eggs 2")
    before = n_events(p)
    top = organise.umbrella(p, wf.A, [a, b], "eggs")
    assert n_events(p) == before + 1
    tree = {n["id"]: n for n in organise.tree(p)}
    assert tree[top]["n_total"] == 10 and tree[top]["n_members"] == 0
    assert tree[a]["parent_id"] == top == tree[b]["parent_id"]
    undo.undo_last(p, wf.A)
    assert node_row(p, top) is None and node_row(p, a).parent_id is None
    with pytest.raises(WorkflowError, match="needs a name"):
        organise.umbrella(p, wf.A, [a], " ")


def test_new_node_from_object_takes_it_out_of_its_node_and_undo(wf):
    p = wf.project
    cand = wf.make_node(wf.by_class[CLASSES[2]][:8])
    pk = wf.by_class[CLASSES[2]][3]
    nid = organise.new_node_from_object(p, wf.A, pk, name="puff")
    assert member_set(p, nid) == {pk} and pk not in member_set(p, cand)
    assert organise.object_label(p, pk) == "puff"
    check_counts(p)
    undo.undo_last(p, wf.A)
    assert node_row(p, nid) is None and pk in member_set(p, cand)
    check_counts(p)
    with pytest.raises(WorkflowError, match="not found"):
        organise.new_node_from_object(p, wf.A, 10**6)


def test_undo_is_per_user_and_logged(wf):
    p = wf.project
    a = _approved(wf, 0, slice(0, 3), "a")
    organise.name(p, wf.A, a, "by-ann")
    organise.name(p, wf.B, a, "by-bob")
    with pytest.raises(WorkflowError, match="nothing to undo"):
        undo.undo_last(p, 99)
    done = undo.undo_last(p, wf.A)  # ann's rename; bob renamed it since, so his name stays
    assert done["action"] == "name" and done["skipped_fields"] == 1 and done["skipped"] == 0
    assert node_row(p, a).name == "by-bob"
    undo.undo_last(p, wf.B)
    assert node_row(p, a).name == "by-ann"
    entries = undo.log(p, limit=10)
    assert [e["action"] for e in entries[:4]] == ["undo", "undo", "name", "name"]
    assert entries[3]["undone_by"] == entries[1]["id"] and "reverse" not in entries[0]["payload"]
    with p.session() as s:
        assert s.scalars(select(Event.user_id).where(Event.action == "undo")).all() == [wf.A, wf.B]
        assert s.scalar(select(Object.id).limit(1)) is not None


def test_the_id_of_a_node_removed_by_undo_is_not_given_again(wf):
    p = wf.project
    first = organise.new_node_from_object(p, wf.A, wf.by_class[CLASSES[0]][-1])
    undo.undo_last(p, wf.A)
    assert node_row(p, first) is None
    second = organise.new_node_from_object(p, wf.A, wf.by_class[CLASSES[0]][-1])
    assert second > first


def test_a_name_differing_only_in_case_takes_the_spelling_in_use(wf):
    from morphocluster.workflow import validate

    p = wf.project
    a = _approved(wf, 0, slice(0, 5), "Acantharia")
    b = _approved(wf, 1, slice(0, 5), None)
    organise.name(p, wf.A, b, "acantharia")
    assert node_row(p, b).name == "Acantharia"
    c = wf.make_node(wf.by_class[CLASSES[2]][:5])
    validate.approve(p, wf.A, c, name=" ACANTHARIA ")
    assert node_row(p, c).name == "Acantharia"
    organise.name(p, wf.A, a, "acantharia")
    assert node_row(p, a).name == "Acantharia"  # b and c spell it so
    organise.name(p, wf.A, b, "Acantharia sp.")  # another name is kept as typed
    assert node_row(p, b).name == "Acantharia sp."


def test_a_name_with_the_path_separator_is_refused(wf):
    p = wf.project
    nid = _approved(wf, 0, slice(0, 5), "sagitta")
    with pytest.raises(WorkflowError, match="cannot contain '>' or '<'"):
        organise.name(p, wf.A, nid, "Chaetognatha>Sagitta")
    with pytest.raises(WorkflowError, match="cannot contain '>' or '<'"):  # EcoTaxa's display form
        organise.name(p, wf.A, nid, "Sagitta<Chaetognatha")
    assert node_row(p, nid).name == "sagitta"
    with pytest.raises(WorkflowError, match="cannot contain '>'"):
        organise.umbrella(p, wf.A, [nid], "Animalia>Chaetognatha")
    # "more like this" with a name: the same checks, the spelling in use
    with pytest.raises(WorkflowError, match="cannot contain"):
        organise.new_node_from_object(p, wf.A, wf.by_class[CLASSES[0]][10], "Fish>egg")
    more = organise.new_node_from_object(p, wf.A, wf.by_class[CLASSES[0]][10], "SAGITTA")
    assert node_row(p, more).name == "sagitta"
    top = organise.umbrella(p, wf.A, [nid], "SAGITTA")  # an umbrella's name takes the spelling in use
    assert node_row(p, top).name == "sagitta"


def test_a_class_under_an_umbrella_takes_new_nodes_of_its_name_there(wf):
    from morphocluster.labels import node_labels
    from morphocluster.workflow import validate

    p = wf.project
    a = _approved(wf, 0, slice(0, 5), "sagitta")
    top = organise.umbrella(p, wf.A, [a], "Chaetognatha")
    c = wf.make_node(wf.by_class[CLASSES[0]][5:10])
    validate.approve(p, wf.A, c, name="Sagitta")  # a later round's cluster of the same class
    assert (node_row(p, c).name, node_row(p, c).parent_id) == ("sagitta", top)
    d = _approved(wf, 0, slice(10, 12), None)
    organise.name(p, wf.A, d, "sagitta")
    assert node_row(p, d).parent_id == top
    with p.session() as s:
        assert {nl.path for nid, nl in node_labels(s).items() if nid in (a, c, d)} == {"Chaetognatha>sagitta"}
    undo.undo_last(p, wf.A)  # the rename's undo takes it back out as well
    assert node_row(p, d).parent_id is None and node_row(p, d).name is None


def test_find_node_by_id_name_path_or_candidate_name(wf):
    p = wf.project
    cop = _approved(wf, 1, slice(0, 3), "Copepoda")
    fish = _approved(wf, 2, slice(0, 3), "Fish")
    egg_c = _approved(wf, 1, slice(3, 6), "egg", parent_id=cop)
    egg_f = _approved(wf, 2, slice(3, 9), "egg", parent_id=fish)
    cand = wf.make_node(wf.by_class[CLASSES[0]][0:4], name="maybe sagitta")
    assert organise.find_node(p, str(fish)) == fish
    assert organise.find_node(p, f" #{fish} ") == fish
    assert organise.find_node(p, "copepoda") == cop  # case aside
    assert organise.find_node(p, "Copepoda>egg") == egg_c
    assert organise.find_node(p, "egg<Fish") == egg_f  # as the name fields show it
    assert organise.find_node(p, "Maybe Sagitta") == cand  # a named candidate
    assert organise.find_node(p, "EGG<fish") == egg_f  # case aside here too
    with pytest.raises(WorkflowError, match="several labels: type one of egg<Copepoda, egg<Fish"):
        organise.find_node(p, "egg")
    three = _approved(wf, 2, slice(10, 13), "3")  # a name of digits: the name, '#3' the id
    assert organise.find_node(p, "3") == three and organise.find_node(p, "#3") == 3
    with pytest.raises(WorkflowError, match="no node is called 'shrimp'"):
        organise.find_node(p, "shrimp")
    wf.make_node(wf.by_class[CLASSES[0]][4:8], name="maybe sagitta")
    with pytest.raises(WorkflowError, match="several nodes"):
        organise.find_node(p, "maybe sagitta")
    # a name field offering nodes leaves out the imported categories no node carries
    assert "trichodesmium_puff" not in organise.known_names(p, "", imported=False)
    assert "egg<Fish" in organise.known_names(p, "", imported=False)


def test_tree_without_candidates_reads_approved_nodes_and_keeps_subtree_counts(wf):
    p = wf.project
    top = _approved(wf, 1, slice(0, 4), "eggs")
    child = wf.make_node(wf.by_class[CLASSES[1]][4:7], parent_id=top)  # a candidate below it
    waiting = wf.make_node(wf.by_class[CLASSES[2]][:5])  # a candidate of a round
    full = {n["id"]: n for n in organise.tree(p)}
    lean = {n["id"]: n for n in organise.tree(p, candidates=False)}
    assert waiting in full and waiting not in lean
    assert child in lean and lean[top]["n_total"] == full[top]["n_total"] == 7
    assert lean[top]["label"] == "eggs"
