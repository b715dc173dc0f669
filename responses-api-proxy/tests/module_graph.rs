//! The proxy's modules stay layered (issue 19): no import circle. The layers are listed in the
//! crate README ("Modules, in start-up order").
#![allow(clippy::unwrap_used)]

use suite_test_support::modgraph::{cycles, module_graph};

#[test]
fn no_import_circles() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = module_graph(&src).unwrap();
    assert!(g.len() > 10, "{g:?}");
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "{g:#?}");
}
