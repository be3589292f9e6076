//! The frames set's question templates: each a name and its wordings.

use crate::data::phantom::questions::Template;

pub const LARGER_AT_END: Template = Template {
    name: "larger-at-end",
    wordings: &[
        "Does the polyp look larger in the last frame than in the first?",
        "Is the polyp bigger in the final frame than in frame 1?",
        "Comparing the first and last frames, has the polyp grown in the image?",
    ],
};

pub const IN_EVERY_FRAME: Template = Template {
    name: "in-every-frame",
    wordings: &[
        "Is the {x} visible in every frame?",
        "Does every frame of the sequence show the {x}?",
        "Can the {x} be seen in all of the frames?",
    ],
};

pub const VISIBLE_IN_FRAME: Template = Template {
    name: "visible-in-frame",
    wordings: &[
        "Is the {x} visible in frame {k}?",
        "Does frame {k} show the {x}?",
        "Can you see the {x} in frame {k} of the sequence?",
    ],
};

pub const FRAMES_VISIBLE: Template = Template {
    name: "frames-visible",
    wordings: &[
        "In which frames is the {x} visible? Select all that apply.",
        "Select every frame that shows the {x}.",
        "Which frames contain the {x}? Choose all that apply.",
    ],
};

pub const OBJECTS_IN_FRAME: Template = Template {
    name: "objects-in-frame",
    wordings: &[
        "Which of the following are visible in frame {k}? Select all that apply.",
        "Select everything that can be seen in frame {k}.",
        "What does frame {k} show? Choose all that apply.",
    ],
};

pub const LOCATE_IN_FRAME: Template = Template {
    name: "locate-in-frame",
    wordings: &[
        "Locate the {x} in frame {k}. Answer with a bounding box.",
        "In frame {k}, draw a bounding box around the {x}.",
        "Where is the {x} in frame {k}? Answer with a bounding box.",
    ],
};
