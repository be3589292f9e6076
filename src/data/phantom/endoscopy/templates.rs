//! The endoscopy set's question templates: each a name and its wordings.

use crate::data::phantom::questions::Template;

pub const POLYP_COLOUR: Template = Template {
    name: "polyp-colour",
    wordings: &[
        "What colour is the polyp? Answer red, pink or white.",
        "Which colour does the polyp have: red, pink or white?",
        "Describe the colour of the polyp in one word (red, pink or white).",
    ],
};

pub const INSTRUMENT_TYPE: Template = Template {
    name: "instrument-type",
    wordings: &[
        "What instrument is visible? Answer forceps, snare or catheter.",
        "Which endoscopic tool can be seen: forceps, snare or catheter?",
        "Name the instrument in the image (forceps, snare or catheter).",
    ],
};

pub const COUNT: Template = Template {
    name: "count",
    wordings: &[
        "How many polyps are there? Answer with a number.",
        "Count the polyps in this colonoscopy image. Answer with a number.",
        "How many polyps can be seen? Answer with a number.",
    ],
};

pub const POLYP_SIZE: Template = Template {
    name: "polyp-size",
    wordings: &[
        "How large is the {which}, judged by the width of its bounding box?",
        "What is the size of the {which} relative to the image?",
        "Which size class fits the {which}?",
    ],
};

pub const POLYP_COLOUR_CHOICE: Template = Template {
    name: "polyp-colour-choice",
    wordings: &[
        "What colour is the polyp?",
        "Which colour best describes the polyp?",
        "The polyp in this image is which colour?",
    ],
};

pub const POLYP_POSITION: Template = Template {
    name: "polyp-position",
    wordings: &[
        "Where in the image is the polyp?",
        "In which quadrant of the image is the polyp located?",
        "Which part of the image contains the polyp?",
    ],
};

pub const INSTRUMENT_CHOICE: Template = Template {
    name: "instrument-choice",
    wordings: &[
        "Which instrument is visible?",
        "What kind of endoscopic tool appears in the image?",
        "The instrument entering the field of view is a:",
    ],
};

pub const TEXT_CORNER: Template = Template {
    name: "text-corner",
    wordings: &[
        "In which corner is the burned-in text?",
        "Where is the processor text overlaid on the image?",
        "Which corner of the image carries the date and time text?",
    ],
};

pub const COUNT_CHOICE: Template = Template {
    name: "count-choice",
    wordings: &[
        "How many polyps are visible?",
        "What is the number of polyps in the image?",
        "How many polyps does this frame show?",
    ],
};

pub const POLYP_QUADRANTS: Template = Template {
    name: "polyp-quadrants",
    wordings: &[
        "Which quadrants of the image contain a polyp? Select all that apply.",
        "Select every image quadrant where a polyp is seen.",
        "In which parts of the image are the polyps? Choose all that apply.",
    ],
};

pub const VISIBLE: Template = Template {
    name: "visible",
    wordings: &[
        "Which of the following are visible in the image? Select all that apply.",
        "Select everything that can be seen in this colonoscopy frame.",
        "Which of these appear in the image? Choose all that apply.",
    ],
};

pub const LOCATE_LARGEST_POLYP: Template = Template {
    name: "locate-largest-polyp",
    wordings: &[
        "Locate the largest polyp. Answer with a bounding box.",
        "Draw a bounding box around the biggest polyp.",
        "Where is the largest polyp? Answer with a bounding box.",
    ],
};
