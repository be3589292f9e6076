use super::*;

fn single(options: &[&str]) -> Task {
    Task::SingleChoice {
        options: options.iter().map(|s| s.to_string()).collect(),
        answer: 0,
    }
}
fn multi(options: &[&str]) -> Task {
    Task::MultiChoice {
        options: options.iter().map(|s| s.to_string()).collect(),
        answer: vec![0],
    }
}
const FOUR: [&str; 4] = [
    "Left lung",
    "Right hemidiaphragm",
    "Right upper lung zone",
    "Cardiac region",
];
const SIX: [&str; 6] = ["one", "two", "three", "four", "five", "six"];

fn got(task: &Task, r: &str) -> (String, Rule) {
    let e = extract(task, r);
    (e.answer.map(|a| a.display()).unwrap_or_default(), e.rule)
}

#[test]
fn medframeqa_answer_letter_convention() {
    // MedFrameQA's prompt asks for the last line "Answer: $LETTER"; reasoning before
    // it names several options.
    let r = "Frame 1 shows the scope entering; option A is unlikely and B ignores frame 3. \
             C and E are possible, but the bleeding in frame 4 points to D.\nAnswer: D";
    assert_eq!(got(&single(&SIX), r), ("D".into(), Rule::AnswerMarker));
    assert_eq!(
        got(&single(&SIX), "**Final Answer:** (e)"),
        ("E".into(), Rule::AnswerMarker)
    );
    assert_eq!(
        got(&single(&SIX), "Answer:\n\nB"),
        ("B".into(), Rule::AnswerMarker)
    );
}

#[test]
fn boxed_wins_over_everything_else() {
    let r = "A or B? Answer: A. On reflection \\boxed{C}";
    assert_eq!(got(&single(&FOUR), r), ("C".into(), Rule::Boxed));
    assert_eq!(
        got(&single(&FOUR), "\\boxed{\\text{(d)}}"),
        ("D".into(), Rule::Boxed)
    );
}

#[test]
fn reasoning_that_names_several_letters_without_a_marker_is_unparsed() {
    let r = "A is unlikely because of the shadow; B fits better than D.";
    assert_eq!(got(&single(&FOUR), r), (String::new(), Rule::Unparsed));
}

#[test]
fn one_standalone_letter_in_any_form() {
    for r in [
        "B",
        "(B)",
        "B.",
        "B) Right hemidiaphragm",
        "The correct option is B",
        "(b)",
        "[C]",
    ] {
        let e = extract(&single(&FOUR), r);
        assert_eq!(e.rule, Rule::Letter, "{r}");
    }
    assert_eq!(
        got(&single(&FOUR), "The answer is (b)."),
        ("B".into(), Rule::Letter)
    );
    // The same letter twice is still one distinct letter.
    assert_eq!(
        got(&single(&FOUR), "B. Right hemidiaphragm (B)"),
        ("B".into(), Rule::Letter)
    );
}

#[test]
fn lowercase_letters_need_a_bracket_marker_or_box() {
    // A bare lowercase "a" is the article, never option A.
    assert_eq!(
        got(&single(&FOUR), "a granuloma in the cardiac region"),
        ("D".into(), Rule::OptionText)
    );
    assert_eq!(
        got(&single(&FOUR), "answer: c"),
        ("C".into(), Rule::AnswerMarker)
    );
    assert_eq!(got(&single(&FOUR), "\\boxed{b}"), ("B".into(), Rule::Boxed));
}

#[test]
fn articles_pronouns_and_hyphenated_words_are_not_letters() {
    assert_eq!(
        got(&single(&FOUR), "A small opacity. I think it is C."),
        ("C".into(), Rule::Letter)
    );
    assert_eq!(
        got(&single(&FOUR), "B-cell infiltrate; answer is C"),
        ("C".into(), Rule::Letter)
    );
    assert_eq!(
        got(&single(&FOUR), "A is correct"),
        ("A".into(), Rule::Letter)
    );
    // Letters past the option count are not options.
    assert_eq!(
        got(&single(&FOUR), "Vitamin K? No: B"),
        ("B".into(), Rule::Letter)
    );
}

#[test]
fn option_text_quoted_back() {
    assert_eq!(
        got(&single(&FOUR), "It is in the right hemidiaphragm."),
        ("B".into(), Rule::OptionText)
    );
    // "Right upper lung zone" contains no other option, "Left lung" is not inside it.
    assert_eq!(
        got(&single(&FOUR), "right upper lung zone"),
        ("C".into(), Rule::OptionText)
    );
    // Two options quoted: unparsed, not the first or the most similar.
    assert_eq!(
        got(&single(&FOUR), "left lung or cardiac region"),
        (String::new(), Rule::Unparsed)
    );
    // Options labelled with their own letter (GEMeX's "A: ...") match on the text.
    let t = single(&["A: 0.5 cm", "B: 1.0 cm", "C: 1.2 cm", "D: 1.5 cm"]);
    assert_eq!(got(&t, "about 1.2 cm"), ("C".into(), Rule::OptionText));
}

#[test]
fn a_shorter_option_inside_a_longer_matched_one_does_not_count() {
    let t = single(&["pleural effusion", "no pleural effusion", "pneumothorax"]);
    assert_eq!(
        got(&t, "There is no pleural effusion."),
        ("B".into(), Rule::OptionText)
    );
}

#[test]
fn multi_choice_lists() {
    let t = multi(&FOUR);
    assert_eq!(got(&t, "A and C"), ("A, C".into(), Rule::LetterList));
    assert_eq!(got(&t, "A, B, D"), ("A, B, D".into(), Rule::LetterList));
    assert_eq!(
        got(&t, "(A) & (D) are right"),
        ("A, D".into(), Rule::LetterList)
    );
    assert_eq!(got(&t, "Answer: b, c"), ("B, C".into(), Rule::AnswerMarker));
    assert_eq!(got(&t, "\\boxed{A, C}"), ("A, C".into(), Rule::Boxed));
    // A letter mentioned again in prose keeps the list.
    assert_eq!(
        got(&t, "A and C. A shows the lesion."),
        ("A, C".into(), Rule::LetterList)
    );
    // Scattered letters in separate places are not one list.
    assert_eq!(
        got(&t, "A is clear. Also C is seen."),
        (String::new(), Rule::Unparsed)
    );
    // Option texts quoted back.
    assert_eq!(
        got(&t, "the left lung and the cardiac region"),
        ("A, D".into(), Rule::OptionText)
    );
}

#[test]
fn closed_reads_the_first_whole_word_yes_or_no() {
    let t = Task::Closed { answer: true };
    assert_eq!(
        got(&t, "Notice the effusion; no pneumothorax."),
        ("no".into(), Rule::YesNo)
    );
    assert_eq!(
        got(&t, "Not sure. Yes, probably."),
        ("yes".into(), Rule::YesNo)
    );
    assert_eq!(got(&t, "YES."), ("yes".into(), Rule::YesNo));
    assert_eq!(
        got(&t, "Nothing notable, nonetheless..."),
        (String::new(), Rule::Unparsed)
    );
    assert_eq!(
        got(&t, "Yes or no? Answer: No"),
        ("no".into(), Rule::AnswerMarker)
    );
    assert_eq!(got(&t, "\\boxed{yes}"), ("yes".into(), Rule::Boxed));
}

#[test]
fn gemex_answer_tag_is_the_answer_region() {
    let t = single(&FOUR);
    let r = "<answer> B <reason> Not A: the granuloma is below the diaphragm. <location> [[1, 2, 3, 4]]";
    let e = extract(&t, r);
    assert_eq!(
        (e.answer.unwrap().display(), e.rule, e.answer_tag),
        ("B".into(), Rule::Letter, true)
    );
    let o = Task::Open { answer: "x".into() };
    let e = extract(&o, "<answer> Possible trauma. <reason> Air collections.");
    assert_eq!(e.answer, Some(Answer::Text("Possible trauma.".into())));
}

#[test]
fn think_blocks_are_ignored() {
    let t = Task::Closed { answer: true };
    assert_eq!(
        got(&t, "<think>no idea, maybe yes</think> Yes."),
        ("yes".into(), Rule::YesNo)
    );
}

#[test]
fn open_answers_are_the_trimmed_text_and_empty_is_unparsed() {
    let t = Task::Open { answer: "x".into() };
    assert_eq!(
        got(&t, "  A polyp. \n"),
        ("A polyp.".into(), Rule::OpenText)
    );
    assert_eq!(got(&t, " \n"), (String::new(), Rule::Unparsed));
}

#[test]
fn canonical_answers_compare_texts_after_normalisation() {
    assert_eq!(Answer::Text("The polyp.".into()).canonical(), "polyp");
    assert_eq!(Answer::Letters(vec![0, 2]).canonical(), "A, C");
}

#[test]
fn the_answer_span_points_into_the_response() {
    let span_text = |task: &Task, r: &str| -> Option<String> {
        let (a, b) = extract(task, r).span?;
        Some(r[a..b].to_string())
    };
    let closed = Task::Closed { answer: true };
    assert_eq!(
        span_text(&closed, "Notice: no effusion."),
        Some("no".into())
    );
    assert_eq!(
        span_text(&closed, "<think>yes?</think> Answer: Yes"),
        Some("Yes".into())
    );
    assert_eq!(span_text(&closed, r"maybe \boxed{no}"), Some("no".into()));
    let s = single(&FOUR);
    assert_eq!(span_text(&s, "The answer is (B)."), Some("B".into()));
    assert_eq!(
        span_text(&s, "Reasoning: A is unlikely.\nAnswer: C"),
        Some("C".into())
    );
    // An option matched by its text has no place in the raw response.
    assert_eq!(span_text(&s, "the cardiac region"), None);
    assert_eq!(span_text(&multi(&SIX), "A and C"), Some("A and C".into()));
    let open = Task::Open { answer: "x".into() };
    assert_eq!(
        span_text(&open, "<answer>  left lung </answer>"),
        Some("left lung".into())
    );
    assert_eq!(extract(&open, "   ").span, None);
}
