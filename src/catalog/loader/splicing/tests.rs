use super::*;

#[test]
fn only_tojson_and_conditions_leave_free_text_safe() {
    let safe = [
        "name: {{ note | tojson }}\n",
        "{% if note %}note: {{- note|tojson -}}{% endif %}\n",
        "{% if x %}{% elif note == 'a' %}{% endif %}{{ note | tojson }}",
        // Text, comments, strings and attributes named alike are not the variable.
        "note: {{ note | tojson }} {# {{ note }} #} {{ 'note' }} {{ x.note }}\n",
        "{% raw %}{{ note }}{% endraw %}{{ note | tojson }}",
        "{% raw -%} {{ note }} {%- endraw %}{{ note | tojson }}",
    ];
    for source in safe {
        assert!(
            written_safely(source, ("note", None), Holds::Data),
            "{source}"
        );
    }
    let unsafe_ = [
        "name: \"{{ note }}\"\n",
        "name: {{ note | upper }}\n",
        "name: {{ note | tojson | indent(2) }}\n",
        "{% set n = note %}{{ n | tojson }}",
        "{% for line in note %}{{ line }}{% endfor %}",
        "{{ 'a' if note else 'b' }}{{ note | tojson }}",
        "{{ \"}}\" ~ note }}",
        // Read where no tag shows it: taken as unsafe.
        "",
        // The raw block ends at its `{% endraw %}` tag, not at the word: what
        // follows is read as the engine reads it.
        "{% if note %}{% endif %}\n# {% raw %}endraw {{ \"{% endraw %}\n\nname: {{ note }}\n# \" }}\n",
    ];
    for source in unsafe_ {
        assert!(
            !written_safely(source, ("note", None), Holds::Data),
            "{source}"
        );
    }
    // A JSON string is no quoting in SQL.
    assert!(!written_safely(
        "\\set owner {{ note | tojson }}",
        ("note", None),
        Holds::Sql
    ));
    assert!(written_safely(
        "{% if note %}-- noted{% endif %}",
        ("note", None),
        Holds::Sql
    ));
}

#[test]
fn outputs_are_told_by_their_extension() {
    let output = |path: &str, template: &str| OutputSpec {
        name: "o".into(),
        path: path.into(),
        template: template.into(),
    };
    let kind = |path, template| holds(&output(path, template));
    assert!(kind("a/{{ name }}.yaml", "t.j2") == Some(Holds::Data));
    assert!(kind("a/{{ name }}", "x/values.YML.j2") == Some(Holds::Data));
    assert!(kind("a.json", "t") == Some(Holds::Data));
    assert!(kind("a/create.sql", "t.tmpl") == Some(Holds::Sql));
    assert!(kind("a/README.md", "readme.md.j2").is_none());
}
