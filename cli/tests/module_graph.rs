//! The CLI's modules stay layered (issue 19 cut the `config ↔ features` circle through
//! `feature_table`): no import circle.
#![allow(clippy::unwrap_used)]

use suite_test_support::modgraph::{cycles, module_graph};

#[test]
fn no_import_circles() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = module_graph(&src).unwrap();
    assert!(
        g.contains_key("config") && g.contains_key("features"),
        "{g:?}"
    );
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "{g:#?}");
}
