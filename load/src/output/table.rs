//! Tables as data: rows of cells, aligned by one printer, so no command lays out columns with
//! format strings of its own.

use std::fmt::Write as _;

/// How a column's cells sit in their width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Padded on the right (a left-aligned last column is not padded: no trailing spaces).
    Left,
    /// Padded on the left.
    Right,
}

/// One column: its alignment, its width, and what separates it from the column before.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    align: Align,
    width: usize,
    fit: bool,
    gap: &'static str,
}

impl Column {
    /// Left-aligned, at least `width` wide (wider cells push the rest of their line along).
    pub(crate) fn left(width: usize) -> Self {
        Column {
            align: Align::Left,
            width,
            fit: false,
            gap: " ",
        }
    }

    /// Right-aligned, at least `width` wide.
    pub(crate) fn right(width: usize) -> Self {
        Column {
            align: Align::Right,
            ..Self::left(width)
        }
    }

    /// As wide as its widest cell, and at least its width: every line stays aligned.
    pub(crate) fn fit(self) -> Self {
        Column { fit: true, ..self }
    }

    /// Separated from the column before by `gap` instead of one space.
    pub(crate) fn after(self, gap: &'static str) -> Self {
        Column { gap, ..self }
    }
}

/// Rows of cells under columns; a row of no cells is a blank line.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    indent: &'static str,
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose lines start with `indent`.
    pub(crate) fn new(indent: &'static str, columns: Vec<Column>) -> Self {
        Table {
            indent,
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a line of cells, one per column.
    pub(crate) fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Adds a blank line.
    pub(crate) fn blank(&mut self) {
        self.rows.push(Vec::new());
    }

    /// The lines, each ending with a line break.
    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = (self.columns.iter().enumerate())
            .map(|(i, column)| {
                if column.fit {
                    (self.rows.iter())
                        .filter_map(|row| row.get(i).map(String::len))
                        .fold(column.width, usize::max)
                } else {
                    column.width
                }
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            if !row.is_empty() {
                out.push_str(self.indent);
            }
            for (i, (cell, column)) in row.iter().zip(&self.columns).enumerate() {
                if i > 0 {
                    out.push_str(column.gap);
                }
                let width = widths[i];
                let _ = match column.align {
                    Align::Left if i + 1 == row.len() => write!(out, "{cell}"),
                    Align::Left => write!(out, "{cell:<width$}"),
                    Align::Right => write!(out, "{cell:>width$}"),
                };
            }
            out.push('\n');
        }
        out
    }
}

/// `name: value` lines with the values aligned, as in a run's summary.
#[derive(Debug, Clone)]
pub(crate) struct Fields(Table);

impl Fields {
    /// Fields whose names (with their colon) are padded to `width`.
    pub(crate) fn new(width: usize) -> Self {
        Fields(Table::new("  ", vec![Column::left(width), Column::left(0)]))
    }

    /// Adds `name: value`.
    pub(crate) fn line(&mut self, name: &str, value: &str) {
        self.0.row([format!("{name}:"), value.to_string()]);
    }

    /// The lines, each ending with a line break.
    pub(crate) fn render(&self) -> String {
        self.0.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_pad_like_format_and_the_last_left_column_is_not_padded() {
        let mut table = Table::new(
            "  ",
            vec![
                Column::left(3).fit(),
                Column::right(4),
                Column::left(0).after("  "),
            ],
        );
        table.row(["mode", "n", "verdict"]);
        table.blank();
        table.row(["a", "12345", "ok"]);
        assert_eq!(table.render(), "  mode    n  verdict\n\n  a    12345  ok\n");
    }
}
