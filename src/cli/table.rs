//! Plain text tables for humans: columns padded to their widest cell, with optional section
//! lines (a heading above a group of rows) that span the table and do not widen its columns.

pub struct Table {
    header: Vec<String>,
    lines: Vec<Line>,
}

enum Line {
    Row(Vec<String>),
    Section(String),
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            lines: vec![],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.lines.push(Line::Row(cells));
    }

    /// A line of its own between rows: a heading for the rows that follow it.
    pub fn section(&mut self, text: impl Into<String>) {
        self.lines.push(Line::Section(text.into()));
    }

    pub fn render(&self) -> String {
        let rows = || {
            self.lines.iter().filter_map(|line| match line {
                Line::Row(cells) => Some(cells),
                Line::Section(_) => None,
            })
        };
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                let cells = rows().filter_map(|r| r.get(i)).map(|c| c.chars().count());
                cells.chain([self.header[i].len()]).max().unwrap_or(0)
            })
            .collect();
        let pad = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = vec![pad(&self.header)];
        out.extend(self.lines.iter().map(|line| match line {
            Line::Row(cells) => pad(cells),
            Line::Section(text) => text.clone(),
        }));
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up() {
        let mut table = Table::new(&["ID", "STATUS"]);
        table.row(vec!["a".into(), "running".into()]);
        table.row(vec!["longer-id".into(), "ok".into()]);
        assert_eq!(
            table.render(),
            "ID         STATUS\na          running\nlonger-id  ok"
        );
    }

    #[test]
    fn sections_head_their_rows_without_widening_the_columns() {
        let mut table = Table::new(&["ID", "STATUS"]);
        table.section("a section line longer than any row");
        table.row(vec!["a".into(), "running".into()]);
        table.section("next");
        table.row(vec!["bb".into(), "ok".into()]);
        assert_eq!(
            table.render(),
            "ID  STATUS\na section line longer than any row\na   running\nnext\nbb  ok"
        );
    }
}
