//! Span limits as recorded: what a span keeps and counts, in both representations (a plain
//! live span, and one that finishes as a `cf_rustracing` span), and the tag index.

use crate::telemetry::tracing::{self, Span, StartTraceOptions, Tag, TagValue};
use crate::telemetry::{SpanLimits, TelemetryContext, TestSpan};
use crate::{add_span_log_fields, add_span_tags, set_span_finish_callback};

fn one_root(limits: SpanLimits, f: impl FnOnce()) -> TestSpan {
    let ctx = TelemetryContext::test_with_span_limits(limits);
    ctx.scope_and(|| {
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        f();
    });
    ctx.traces(Default::default()).remove(0)
}

#[test]
fn ten_thousand_tags_keep_the_first_128_and_count_the_rest() {
    let root = one_root(SpanLimits::default(), || {
        for i in 0..10_000 {
            add_span_tags!(format!("tag.{i}") => i);
        }
    });
    assert_eq!(root.tags.len(), 128);
    assert_eq!(root.dropped_attributes_count, 9_872);
    assert_eq!(root.tag("tag.0"), Some(&TagValue::Integer(0)));
    assert_eq!(root.tag("tag.127"), Some(&TagValue::Integer(127)));
    assert_eq!(root.tag("tag.128"), None);
}

#[test]
fn a_later_tag_replaces_the_earlier_and_moves_last_below_and_above_the_index() {
    for count in [3, super::INDEX_FROM, 50] {
        let ctx = TelemetryContext::test();
        ctx.scope_and(|| {
            let _root = tracing::start_trace("root", StartTraceOptions::default());
            for i in 0..count {
                add_span_tags!(format!("tag.{i}") => i as i64);
            }
            add_span_tags!("tag.1" => "replaced", "tag.0" => "also");
            // Many rewrites of a few names: dead slots are squeezed out as they pile up.
            for round in 0..1_000i64 {
                add_span_tags!("tag.2" => round);
            }
        });
        let spans = ctx.finished_internal_spans();
        let tags = spans[0].tags();
        let names: Vec<&str> = tags.iter().map(|tag| tag.name()).collect();
        assert_eq!(tags.len(), count, "{count} tags: {names:?}");
        assert_eq!(names[count - 3..], ["tag.1", "tag.0", "tag.2"], "{count}");
        assert_eq!(tags[count - 2].value(), &TagValue::from("also"));
        assert_eq!(tags[count - 3].value(), &TagValue::from("replaced"));
        assert_eq!(tags[count - 1].value(), &TagValue::Integer(999));
        assert_eq!(spans[0].dropped_attributes_count(), 0);
    }
}

#[test]
fn a_static_and_an_owned_name_are_one_tag_and_a_cut_macro_tag_spills() {
    let root = one_root(SpanLimits::default(), || {
        add_span_tags!("macro.k" => 1);
        add_span_tags!(String::from("macro.k") => 2, "macro.b" => true);
        add_span_tags!("macro.k" => 3);
    });
    let names: Vec<&str> = root.tags.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["macro.b", "macro.k"]);
    assert_eq!(root.tag("macro.k"), Some(&TagValue::Integer(3)));
    // With a value length limit, a macro's tag is cut like any other.
    let limits = SpanLimits::default().with_max_attribute_value_length(Some(3));
    let root = one_root(limits, || add_span_tags!("macro.s" => "abcdef"));
    assert_eq!(root.tag("macro.s"), Some(&TagValue::from("abc")));
}

#[test]
fn the_last_status_written_wins_on_a_span_with_many_tags() {
    use crate::telemetry::tracing::SpanStatus;
    let root = one_root(SpanLimits::default(), || {
        for i in 0..20 {
            add_span_tags!(format!("tag.{i}") => i);
        }
        add_span_tags!("error" => true);
        tracing::set_span_status(SpanStatus::Ok);
        add_span_tags!("error" => true);
    });
    assert!(
        matches!(root.status, SpanStatus::Error { .. }),
        "{:?}",
        root.status
    );
}

#[test]
fn a_full_span_still_replaces_tags_it_has_without_counting_them() {
    let root = one_root(SpanLimits::default().with_max_attributes(10), || {
        for i in 0..20 {
            add_span_tags!(format!("tag.{i}") => i);
        }
        add_span_tags!("tag.9" => "new value");
    });
    assert_eq!(root.tags.len(), 10);
    assert_eq!(root.tag("tag.9"), Some(&TagValue::from("new value")));
    assert_eq!(root.dropped_attributes_count, 10);
}

#[test]
fn a_zero_attribute_limit_keeps_no_tags() {
    let root = one_root(SpanLimits::default().with_max_attributes(0), || {
        add_span_tags!("a" => 1, "b" => 2);
    });
    assert!(root.tags.is_empty());
    assert_eq!(root.dropped_attributes_count, 2);
}

#[test]
fn values_are_cut_at_a_character_boundary() {
    let limits = SpanLimits::default().with_max_attribute_value_length(Some(4));
    let root = one_root(limits, || {
        add_span_tags!("ascii" => "abcdefgh", "short" => "abc", "wide" => "aé€x", "int" => 123456);
        add_span_log_fields!("event" => "a long event name", "field" => "0123456789");
    });
    assert_eq!(root.tag("ascii"), Some(&TagValue::from("abcd")));
    assert_eq!(root.tag("short"), Some(&TagValue::from("abc")));
    // "a" (1 byte) + "é" (2 bytes) fit in 4; "€" (3 bytes) does not.
    assert_eq!(root.tag("wide"), Some(&TagValue::from("aé")));
    assert_eq!(root.tag("int"), Some(&TagValue::Integer(123456)));
    let fields = &root.logs[0].fields;
    assert!(fields.contains(&("field".to_owned(), "0123".to_owned())));
    assert!(fields.contains(&("event".to_owned(), "a lo".to_owned())));
}

#[test]
fn events_and_their_fields_are_bounded_and_counted() {
    let limits = SpanLimits::default()
        .with_max_events(2)
        .with_max_attributes_per_event(2);
    let root = one_root(limits, || {
        // The `event` field names the entry: it does not count against the limit.
        add_span_log_fields!("event" => "first", "a" => "1", "b" => "2", "c" => "3", "d" => "4");
        add_span_log_fields!("event" => "second", "a" => "1");
        add_span_log_fields!("event" => "third");
        add_span_log_fields!("event" => "fourth");
    });
    assert_eq!(root.logs.len(), 2);
    assert_eq!(root.dropped_events_count, 2);
    assert_eq!(root.logs[0].fields.len(), 3, "{:?}", root.logs[0].fields);
    assert_eq!(root.logs[0].dropped_attributes_count, 2);
    assert_eq!(root.logs[1].dropped_attributes_count, 0);
}

#[test]
fn tags_set_after_a_log_and_by_a_finish_callback_obey_the_limit() {
    let root = one_root(SpanLimits::default().with_max_attributes(3), || {
        add_span_tags!("a" => 1);
        add_span_log_fields!("event" => "x");
        add_span_tags!("b" => 2, "a" => 10);
        set_span_finish_callback!(|span: &mut Span| {
            span.set_tag(|| Tag::new("from_callback", true));
            span.set_tag(|| Tag::new("b", 20));
            span.set_tag(|| Tag::new("over", true));
        });
    });
    assert_eq!(root.logs.len(), 1);
    assert_eq!(root.tag("a"), Some(&TagValue::Integer(10)));
    assert_eq!(
        root.tag("b"),
        Some(&TagValue::Integer(20)),
        "the callback's tag wins"
    );
    assert_eq!(root.tag("from_callback"), Some(&TagValue::Boolean(true)));
    assert_eq!(root.tag("over"), None);
    assert_eq!(root.tags.len(), 3);
    assert_eq!(root.dropped_attributes_count, 1);
}

#[test]
fn the_links_limit_comes_from_the_span_limits() {
    let limits = SpanLimits::default()
        .with_max_links(2)
        .with_max_attribute_value_length(Some(2));
    let ctx = TelemetryContext::test_with_span_limits(limits);
    ctx.scope_and(|| {
        let _other = tracing::start_trace("other", StartTraceOptions::default());
        let target = tracing::w3c_traceparent().unwrap();
        drop(_other);
        let _root = tracing::start_trace("root", StartTraceOptions::default());
        for _ in 0..5 {
            tracing::add_link(target, None, [Tag::new("k", "long")]);
        }
    });
    let root = ctx
        .traces(Default::default())
        .into_iter()
        .find(|span| span.name == "root")
        .unwrap();
    assert_eq!(root.links.len(), 2);
    assert_eq!(root.dropped_links_count, 3);
    assert_eq!(root.links[0].attributes[0].value(), &TagValue::from("lo"));
}

#[test]
fn an_entry_whose_fields_are_all_over_the_limit_counts_as_a_dropped_event() {
    let root = one_root(
        SpanLimits::default().with_max_attributes_per_event(0),
        || {
            add_span_log_fields!("a" => "1", "b" => "2");
            add_span_log_fields!("event" => "named", "c" => "3");
        },
    );
    assert_eq!(root.logs.len(), 1);
    assert_eq!(
        root.logs[0].fields,
        [("event".to_owned(), "named".to_owned())]
    );
    assert_eq!(root.logs[0].dropped_attributes_count, 1);
    assert_eq!(root.dropped_events_count, 1);
}

#[test]
fn two_tags_are_inline_and_a_third_moves_them_out_in_order() {
    use super::{InlineTags, set_tag};
    let limits = SpanLimits::default();
    let names = |tags: &InlineTags, bounded: &Option<Box<super::Bounded>>| -> Vec<String> {
        let inline: Vec<String> = tags
            .get()
            .into_iter()
            .map(|tag| tag.name().to_owned())
            .collect();
        let spilled = bounded.as_ref().map_or(Vec::new(), |b| {
            b.tags.iter().map(|tag| tag.name().to_owned()).collect()
        });
        assert!(inline.is_empty() || spilled.is_empty(), "inline or spilled");
        [inline, spilled].concat()
    };
    let (mut tags, mut bounded) = (InlineTags::new(), None);
    set_tag(&mut tags, &mut bounded, Tag::new("a", 1i64), &limits);
    assert!(
        !tags.is_empty() && bounded.is_none(),
        "one literal tag allocates nothing"
    );
    set_tag(&mut tags, &mut bounded, Tag::new("a", "replaced"), &limits);
    assert!(bounded.is_none());
    // A string and an integer: both inline, the integer in the small slot.
    set_tag(&mut tags, &mut bounded, Tag::new("b", 2i64), &limits);
    assert_eq!(tags.len(), 2);
    assert!(
        bounded.is_none(),
        "two tags, one of them small, allocate nothing"
    );
    assert_eq!(names(&tags, &bounded), ["a", "b"]);
    // Rewriting the first moves it last, inline still.
    set_tag(&mut tags, &mut bounded, Tag::new("a", 3i64), &limits);
    assert_eq!(names(&tags, &bounded), ["b", "a"]);
    assert!(bounded.is_none());
    // The string comes back written last: the small slot remembers it was first.
    set_tag(&mut tags, &mut bounded, Tag::new("a", "again"), &limits);
    assert_eq!(names(&tags, &bounded), ["b", "a"]);
    assert_eq!(
        tags.get().into_iter().last().unwrap().to_tag().value(),
        &TagValue::String("again".into())
    );
    // A third moves all out, in order.
    set_tag(&mut tags, &mut bounded, Tag::new("c", 4i64), &limits);
    assert!(tags.is_empty());
    assert_eq!(names(&tags, &bounded), ["b", "a", "c"]);
    set_tag(&mut tags, &mut bounded, Tag::new("b", 5i64), &limits);
    assert_eq!(names(&tags, &bounded), ["a", "c", "b"]);

    // Two strings, or an integer too large for the small slot, cannot both be inline.
    for second in [
        Tag::new("b", "text"),
        Tag::new("b", i64::MAX),
        Tag::new("b", 1.5),
    ] {
        let (mut tags, mut bounded) = (InlineTags::new(), None);
        set_tag(&mut tags, &mut bounded, Tag::new("a", "text"), &limits);
        set_tag(&mut tags, &mut bounded, second.clone(), &limits);
        assert!(tags.is_empty(), "{second:?}");
        assert_eq!(names(&tags, &bounded), ["a", "b"]);
        assert_eq!(bounded.unwrap().tags[1].value(), second.value());
    }

    // An owned value cannot be inline: it is kept all the same.
    let (mut tags, mut bounded) = (InlineTags::new(), None);
    set_tag(
        &mut tags,
        &mut bounded,
        Tag::new("a", String::from("x")),
        &limits,
    );
    assert_eq!(names(&tags, &bounded), ["a"]);
    set_tag(&mut tags, &mut bounded, Tag::new("a", "literal"), &limits);
    assert_eq!(names(&tags, &bounded), ["a"]);

    // A limit of one keeps the first (or its replacement) and counts the others.
    let one = SpanLimits::default().with_max_attributes(1);
    let (mut tags, mut bounded) = (InlineTags::new(), None);
    set_tag(&mut tags, &mut bounded, Tag::new("a", 1i64), &one);
    set_tag(&mut tags, &mut bounded, Tag::new("b", 2i64), &one);
    set_tag(&mut tags, &mut bounded, Tag::new("a", 3i64), &one);
    assert_eq!(names(&tags, &bounded), ["a"]);
    let kept: Vec<_> = tags.get().into_iter().collect();
    assert_eq!(kept[0].to_tag().value(), &TagValue::Integer(3));
    assert_eq!(bounded.unwrap().dropped_attributes, 1);

    // A limit of two keeps two inline and counts a third.
    let two = SpanLimits::default().with_max_attributes(2);
    let (mut tags, mut bounded) = (InlineTags::new(), None);
    set_tag(&mut tags, &mut bounded, Tag::new("a", "x"), &two);
    set_tag(&mut tags, &mut bounded, Tag::new("b", 2i64), &two);
    set_tag(&mut tags, &mut bounded, Tag::new("c", 3i64), &two);
    set_tag(&mut tags, &mut bounded, Tag::new("a", "y"), &two);
    assert_eq!(names(&tags, &bounded), ["b", "a"]);
    assert_eq!(bounded.unwrap().dropped_attributes, 1);
}

/// What a span keeps of its tags, in order, and the count of those it dropped.
fn kept(
    tags: &super::InlineTags,
    bounded: &Option<Box<super::Bounded>>,
) -> (Vec<(String, TagValue)>, u32) {
    let mut bounded = bounded.clone();
    if let Some(bounded) = &mut bounded {
        super::finish_tags(bounded);
    }
    let inline = tags.get().map(|tag| tag.to_tag());
    assert!(
        inline.is_empty() || bounded.as_ref().is_none_or(|b| b.tags.is_empty()),
        "tags are inline or spilled, never both"
    );
    let spilled = bounded.iter().flat_map(|b| b.tags.iter().cloned());
    let kept = inline
        .into_iter()
        .chain(spilled)
        .map(|tag| (tag.name().to_owned(), tag.value().clone()))
        .collect();
    (kept, bounded.map_or(0, |b| b.dropped_attributes))
}

#[test]
fn first_tags_in_one_batch_keep_what_setting_them_one_by_one_keeps() {
    use super::{InlineTags, set_first_tags, set_tag};
    let batches: Vec<Vec<Tag>> = vec![
        vec![],
        vec![Tag::new("a", 1i64)],
        vec![Tag::new("a", 1i64), Tag::new("b", String::from("owned"))],
        // Two that can be inline, either way round, and two that cannot.
        vec![Tag::new("a", 1i64), Tag::new("b", "literal")],
        vec![Tag::new("a", "literal"), Tag::new("b", true)],
        vec![Tag::new("a", "literal"), Tag::new("b", "literal")],
        vec![Tag::new("a", 1.5), Tag::new("b", i64::MIN)],
        vec![Tag::new("a", 1i64), Tag::new("a", 2i64)],
        // A name given twice keeps its last value, moved to its last write.
        vec![
            Tag::new("a", 1i64),
            Tag::new("b", 2i64),
            Tag::new("a", 3i64),
        ],
        // Past the index threshold, with replacements on both sides of it.
        (0..20)
            .map(|i| Tag::new(format!("k{}", i % 13), i64::from(i)))
            .collect(),
        (0..300).map(|i| Tag::new(format!("k{i}"), "v")).collect(),
    ];
    let limits = [
        SpanLimits::default(),
        SpanLimits::default().with_max_attributes(0),
        SpanLimits::default().with_max_attributes(1),
        SpanLimits::default().with_max_attributes(2),
        SpanLimits::default().with_max_attributes(10),
        SpanLimits::default().with_max_attribute_value_length(Some(2)),
    ];
    for limits in &limits {
        for batch in &batches {
            let (mut one_by_one, mut one_by_one_bounded) = (InlineTags::new(), None);
            for tag in batch.iter().cloned() {
                set_tag(&mut one_by_one, &mut one_by_one_bounded, tag, limits);
            }
            let (mut batched, mut batched_bounded) = (InlineTags::new(), None);
            set_first_tags(
                &mut batched,
                &mut batched_bounded,
                batch.iter().cloned().collect(),
                limits,
            );
            assert_eq!(
                kept(&batched, &batched_bounded),
                kept(&one_by_one, &one_by_one_bounded),
                "{} tags under {limits:?}",
                batch.len()
            );
            // Later tags go on as usual.
            set_tag(
                &mut batched,
                &mut batched_bounded,
                Tag::new("late", 1i64),
                limits,
            );
            set_tag(
                &mut one_by_one,
                &mut one_by_one_bounded,
                Tag::new("late", 1i64),
                limits,
            );
            assert_eq!(
                kept(&batched, &batched_bounded),
                kept(&one_by_one, &one_by_one_bounded)
            );
        }
    }
}

#[test]
fn a_span_with_two_tags_keeps_them_inline_or_in_its_one_box() {
    use super::{InlineTags, set_first_tags};
    let (mut tags, mut bounded) = (InlineTags::new(), None);
    set_first_tags(
        &mut tags,
        &mut bounded,
        [Tag::new("a", 200i64), Tag::new("b", "literal")]
            .into_iter()
            .collect(),
        &SpanLimits::default(),
    );
    assert!(
        bounded.is_none(),
        "a literal and a small integer are inline"
    );
    assert_eq!(tags.len(), 2);

    let (mut tags, mut bounded) = (InlineTags::new(), None);
    set_first_tags(
        &mut tags,
        &mut bounded,
        [Tag::new("a", 1i64), Tag::new("b", String::from("owned"))]
            .into_iter()
            .collect(),
        &SpanLimits::default(),
    );
    let bounded = bounded.expect("an owned value is kept apart from the inline tags");
    assert!(tags.is_empty());
    assert!(!bounded.tags.spilled(), "no allocation beside the box");
}

/// A tag value of each shape the storage tells apart: inline in either slot, inline in the
/// first slot only, never inline.
fn any_value() -> impl proptest::strategy::Strategy<Value = TagValue> {
    use proptest::prelude::*;
    prop_oneof![
        any::<bool>().prop_map(TagValue::Boolean),
        (-3i64..3).prop_map(TagValue::Integer),
        any::<i64>().prop_map(TagValue::Integer),
        any::<f64>().prop_map(TagValue::Float),
        Just(TagValue::from("literal")),
        "[a-z]{0,4}".prop_map(TagValue::from),
    ]
}

proptest::proptest! {
    /// Whatever the tags and limits, what a span keeps is what a plain list would: a tag
    /// replaces the one of the same name and moves last, a new one is added while there is
    /// room and counted as dropped past it; inline or not is not visible.
    #[test]
    fn tags_are_kept_as_a_list_would_keep_them(
        writes in proptest::collection::vec((0usize..4, any_value()), 0..12),
        max in 0usize..5,
        cut in proptest::option::of(0usize..3),
    ) {
        use super::{InlineTags, set_tag};
        const NAMES: [&str; 4] = ["a", "b", "c", "http.response.status_code"];
        let limits = SpanLimits::default()
            .with_max_attributes(max)
            .with_max_attribute_value_length(cut);
        let (mut tags, mut bounded) = (InlineTags::new(), None);
        let mut model: Vec<(String, TagValue)> = Vec::new();
        let mut dropped = 0u32;
        for (name, value) in writes {
            let name = NAMES[name];
            set_tag(&mut tags, &mut bounded, Tag::new(name, value.clone()), &limits);
            let value = match (value, cut) {
                (TagValue::String(text), Some(cut)) if text.len() > cut => {
                    TagValue::from(text[..cut].to_owned())
                }
                (value, _) => value,
            };
            if let Some(position) = model.iter().position(|(kept, _)| kept == name) {
                model.remove(position);
                model.push((name.to_owned(), value));
            } else if model.len() < max {
                model.push((name.to_owned(), value));
            } else {
                dropped += 1;
            }
        }
        proptest::prop_assert_eq!(kept(&tags, &bounded), (model, dropped));
    }
}
