//! The cxr set's question templates: each a name and its wordings.

use crate::data::phantom::questions::Template;

pub const NODULE_SIDE: Template = Template {
    name: "nodule-side",
    wordings: &[
        "In which lung is the nodule? Answer left or right.",
        "Which lung contains the pulmonary nodule, the left or the right?",
        "On which side is the nodule seen: left or right?",
    ],
};

pub const EFFUSION_SIDE: Template = Template {
    name: "effusion-side",
    wordings: &[
        "On which side is the pleural effusion? Answer left or right.",
        "Which hemithorax contains the pleural effusion, left or right?",
        "The radiograph shows a pleural effusion. Is it on the left or the right?",
    ],
};

pub const PNEUMOTHORAX_SIDE: Template = Template {
    name: "pneumothorax-side",
    wordings: &[
        "On which side is the pneumothorax? Answer left or right.",
        "Which lung has collapsed away from the chest wall, left or right?",
        "There is a pneumothorax. Is it on the left or the right side?",
    ],
};

pub const COUNT: Template = Template {
    name: "count",
    wordings: &[
        "How many pulmonary nodules are there? Answer with a number.",
        "Count the lung nodules visible on this chest radiograph. Answer with a number.",
        "How many nodules can be seen in the lungs? Answer with a number.",
    ],
};

pub const HAS_EFFUSION: Template = Template {
    name: "has-effusion",
    wordings: &[
        "Is there a pleural effusion?",
        "Does this chest X-ray show a pleural effusion?",
        "Is either costophrenic angle blunted by pleural fluid?",
    ],
};

pub const HAS_PNEUMOTHORAX: Template = Template {
    name: "has-pneumothorax",
    wordings: &[
        "Is there a pneumothorax?",
        "Does this radiograph show a pneumothorax?",
        "Is there a visible pleural line with absent lung markings beyond it?",
    ],
};

pub const HAS_CARDIOMEGALY: Template = Template {
    name: "has-cardiomegaly",
    wordings: &[
        "Is the heart enlarged?",
        "Is there cardiomegaly (cardiothoracic ratio above 0.5)?",
        "Is the cardiothoracic ratio greater than 0.5?",
    ],
};

pub const HAS_NODULE_SIDE: Template = Template {
    name: "has-nodule-side",
    wordings: &[
        "Is there a nodule in the {side} lung?",
        "Does the {side} lung contain a pulmonary nodule?",
        "Can you see a nodule in the {side} lung field?",
    ],
};

pub const IS_NORMAL: Template = Template {
    name: "is-normal",
    wordings: &[
        "Is this chest radiograph normal?",
        "Is this a normal chest X-ray, with no abnormal finding?",
        "Are the lungs, pleura and heart size all normal on this radiograph?",
    ],
};

pub const NODULE_ZONE: Template = Template {
    name: "nodule-zone",
    wordings: &[
        "Where is the nodule located?",
        "In which lung zone is the pulmonary nodule?",
        "Which zone of the lungs contains the nodule?",
    ],
};

pub const PLEURAL_SIDE: Template = Template {
    name: "pleural-side",
    wordings: &[
        "On which side is the {what}?",
        "Where is the {what}?",
        "Which side of the chest shows the {what}?",
    ],
};

pub const COUNT_CHOICE: Template = Template {
    name: "count-choice",
    wordings: &[
        "How many nodules are present in the lungs?",
        "What is the number of pulmonary nodules?",
        "How many lung nodules does this radiograph show?",
    ],
};

pub const CTR_RANGE: Template = Template {
    name: "ctr-range",
    wordings: &[
        "What is the cardiothoracic ratio?",
        "Estimate the cardiothoracic ratio (heart width over chest width).",
        "Which range contains the cardiothoracic ratio of this radiograph?",
    ],
};

pub const NODULE_ZONES: Template = Template {
    name: "nodule-zones",
    wordings: &[
        "Which lung zones contain a nodule? Select all that apply.",
        "In which zones are the pulmonary nodules? Select all that apply.",
        "Select every lung zone where a nodule is seen.",
    ],
};

pub const FINDINGS: Template = Template {
    name: "findings",
    wordings: &[
        "Which of the following findings are present? Select all that apply.",
        "Select every abnormality visible on this chest radiograph.",
        "Which findings does this chest X-ray show? Choose all that apply.",
    ],
};

pub const LOCATE_NODULES: Template = Template {
    name: "locate-nodules",
    wordings: &[
        "Locate every pulmonary nodule. Answer with a bounding box for each.",
        "Draw a bounding box around each lung nodule.",
        "Where are the nodules? Give one bounding box per nodule.",
    ],
};

pub const LOCATE_NODULE_SIDE: Template = Template {
    name: "locate-nodule-side",
    wordings: &[
        "Locate the nodule in the {side} lung. Answer with a bounding box.",
        "Draw a bounding box around the nodule in the {side} lung.",
        "Where is the {side} lung nodule? Answer with a bounding box.",
    ],
};

pub const LOCATE_EFFUSION: Template = Template {
    name: "locate-effusion",
    wordings: &[
        "Locate the pleural effusion. Answer with a bounding box.",
        "Draw a bounding box around the pleural fluid.",
        "Where is the pleural effusion? Answer with a bounding box.",
    ],
};

pub const LOCATE_PNEUMOTHORAX: Template = Template {
    name: "locate-pneumothorax",
    wordings: &[
        "Locate the pneumothorax. Answer with a bounding box.",
        "Draw a bounding box around the pleural air of the pneumothorax.",
        "Where is the pneumothorax? Answer with a bounding box.",
    ],
};

pub const LOCATE_HEART: Template = Template {
    name: "locate-heart",
    wordings: &[
        "Locate the heart. Answer with a bounding box.",
        "Draw a bounding box around the cardiac silhouette.",
        "Where is the heart shadow? Answer with a bounding box.",
    ],
};
