//! `vlsp graph`: a topology as a picture — providers coloured, plain routers
//! drawn hollow, links labelled with their capacity, virtual nodes beside
//! their hosts. DOT as text (for Graphviz users), SVG and PNG drawn directly
//! with plotters and the embedded font (no Graphviz needed).

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use plotters::prelude::*;

use crate::experiment::plot::PALETTE;
use crate::topology::Topology;

fn rate(bps: u64) -> String {
    match bps {
        b if b >= 1_000_000_000 && b % 1_000_000_000 == 0 => format!("{}gbit", b / 1_000_000_000),
        b if b >= 1_000_000 && b % 1_000_000 == 0 => format!("{}mbit", b / 1_000_000),
        b if b >= 1_000 && b % 1_000 == 0 => format!("{}kbit", b / 1_000),
        b => format!("{b}bit"),
    }
}

/// The topology in Graphviz DOT.
pub fn dot(t: &Topology) -> String {
    let mut s = format!(
        "graph \"{}\" {{\n  layout=neato; overlap=false; splines=true;\n",
        t.name
    );
    for (i, p) in t.providers.iter().enumerate() {
        let c = PALETTE[(i + 2) % PALETTE.len()];
        let _ = writeln!(
            s,
            "  subgraph \"cluster_{}\" {{ label=\"{}\"; color=\"#{:02x}{:02x}{:02x}\";",
            p.name, p.name, c.0, c.1, c.2
        );
        for n in t.nodes.iter().filter(|n| n.provider == p.name) {
            let style = if n.nsis { "filled" } else { "dashed" };
            let _ = writeln!(
                s,
                "    \"{}\" [shape=box, style={style}, fillcolor=\"#{:02x}{:02x}{:02x}40\"];",
                n.name, c.0, c.1, c.2
            );
        }
        s += "  }\n";
    }
    for l in &t.links {
        let _ = writeln!(
            s,
            "  \"{}\" -- \"{}\" [label=\"{}\\n{} / {}\"];",
            l.a.node,
            l.b.node,
            rate(l.capacity_bps),
            l.a.addr,
            l.b.addr
        );
    }
    for v in &t.vnodes {
        let _ = writeln!(
            s,
            "  \"{}\" [shape=ellipse, label=\"{}\\n{}\"];\n  \"{}\" -- \"{}\" [style=dotted];",
            v.name, v.name, v.addr, v.name, v.host
        );
    }
    s + "}\n"
}

/// Positions on a circle (a chain is laid on a line instead).
fn layout(t: &Topology) -> HashMap<String, (f64, f64)> {
    let n = t.nodes.len();
    let chain = t.links.len() + 1 == n && t.nodes.iter().all(|x| t.links_of(&x.name).count() <= 2);
    let mut pos = HashMap::new();
    if chain {
        // Walk from an end.
        let start = t
            .nodes
            .iter()
            .find(|x| t.links_of(&x.name).count() <= 1)
            .map(|x| x.name.clone())
            .unwrap_or_default();
        let far = t
            .nodes
            .iter()
            .map(|x| x.name.clone())
            .max_by_key(|x| t.path(&start, x).map_or(0, |p| p.len()))
            .unwrap_or_default();
        for (i, name) in t
            .path(&start, &far)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            pos.insert(name, (0.1 + 0.8 * i as f64 / (n.max(2) - 1) as f64, 0.45));
        }
    } else {
        for (i, x) in t.nodes.iter().enumerate() {
            let a = std::f64::consts::TAU * i as f64 / n as f64;
            pos.insert(x.name.clone(), (0.5 + 0.33 * a.cos(), 0.5 + 0.33 * a.sin()));
        }
    }
    pos
}

fn draw<DB: DrawingBackend>(
    t: &Topology,
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{x}");
    root.fill(&WHITE).map_err(e)?;
    let (w, h) = root.dim_in_pixel();
    let px = |p: (f64, f64)| ((p.0 * w as f64) as i32, (p.1 * h as f64) as i32);
    let pos = layout(t);
    let font = |s: u32| ("sans-serif", s).into_font();
    root.draw(&Text::new(
        format!(
            "{} — {} routers, {} providers",
            t.name,
            t.nodes.len(),
            t.providers.len()
        ),
        (14, 10),
        font(20),
    ))
    .map_err(e)?;
    let big = t.nodes.len() <= 20;
    for l in &t.links {
        let (a, b) = (px(pos[&l.a.node]), px(pos[&l.b.node]));
        root.draw(&PathElement::new(vec![a, b], BLACK.stroke_width(2)))
            .map_err(e)?;
        if big {
            let mid = ((a.0 + b.0) / 2 - 24, (a.1 + b.1) / 2 - 18);
            root.draw(&Text::new(rate(l.capacity_bps), mid, font(13)))
                .map_err(e)?;
        }
    }
    for (i, p) in t.providers.iter().enumerate() {
        let c = PALETTE[(i + 2) % PALETTE.len()];
        root.draw(&Rectangle::new(
            [(14, 40 + 22 * i as i32), (28, 54 + 22 * i as i32)],
            c.filled(),
        ))
        .map_err(e)?;
        root.draw(&Text::new(
            format!("provider {}", p.name),
            (34, 40 + 22 * i as i32),
            font(14),
        ))
        .map_err(e)?;
        for n in t.nodes.iter().filter(|n| n.provider == p.name) {
            let (x, y) = px(pos[&n.name]);
            let r = if big { 16 } else { 5 };
            let style = if n.nsis {
                c.filled()
            } else {
                c.stroke_width(3)
            };
            root.draw(&Circle::new((x, y), r, style)).map_err(e)?;
            if big {
                root.draw(&Text::new(n.name.clone(), (x - 14, y + 20), font(14)))
                    .map_err(e)?;
            }
        }
    }
    for v in &t.vnodes {
        let (x, y) = px(pos[&v.host]);
        let (vx, vy) = (x, y + if big { 80 } else { 40 });
        root.draw(&PathElement::new(
            vec![(x, y), (vx, vy)],
            BLACK.stroke_width(1),
        ))
        .map_err(e)?;
        root.draw(&Rectangle::new(
            [(vx - 30, vy - 12), (vx + 30, vy + 12)],
            WHITE.filled(),
        ))
        .map_err(e)?;
        root.draw(&Rectangle::new(
            [(vx - 30, vy - 12), (vx + 30, vy + 12)],
            BLACK.stroke_width(1),
        ))
        .map_err(e)?;
        root.draw(&Text::new(v.name.clone(), (vx - 22, vy - 8), font(14)))
            .map_err(e)?;
    }
    root.draw(&Text::new(
        "filled: NSIS router   hollow: plain router   box: virtual node",
        (14, h as i32 - 24),
        font(13),
    ))
    .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Writes the graph to `out` (.dot, .svg or .png).
pub fn write(t: &Topology, out: &Path) -> Result<()> {
    crate::experiment::plot::register_font()?;
    match out.extension().and_then(|x| x.to_str()) {
        Some("dot") => std::fs::write(out, dot(t))?,
        Some("svg") => draw(t, &SVGBackend::new(out, (1000, 700)).into_drawing_area())?,
        Some("png") => draw(t, &BitMapBackend::new(out, (1000, 700)).into_drawing_area())?,
        _ => bail!("{}: use a .dot, .svg or .png file name", out.display()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_formats_for_shipped_topologies() {
        let dir = crate::experiment::scratch::Scratch::new("graph");
        for f in [
            "paper-4node",
            "ring-6node",
            "multi-inp-10node",
            "plain-router",
        ] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("topologies")
                .join(format!("{f}.toml"));
            let t = Topology::load(&p).unwrap();
            let d = dot(&t);
            assert!(d.contains("graph") && d.contains(&t.links[0].a.node));
            for ext in ["dot", "svg", "png"] {
                write(&t, &dir.join(format!("{f}.{ext}"))).unwrap();
            }
        }
        assert!(
            dot(&Topology::load(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/plain-router.toml")
            )
            .unwrap())
            .contains("dashed")
        );
        assert!(
            write(
                &Topology::load(
                    &Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/paper-4node.toml")
                )
                .unwrap(),
                &dir.join("x.jpg")
            )
            .is_err()
        );
    }
}
