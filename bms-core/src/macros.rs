//! Internal macros shared by the codecs.

/// A fieldless wire enum that is total in both directions: every raw value decodes (unknown
/// ones to `Unknown(raw)`) and encodes back to the same raw value.
macro_rules! enum_with_unknown {
    (
        $(#[$m:meta])* pub enum $name:ident($ty:ty) {
            $( $(#[$vm:meta])* $v:ident = $val:expr, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub enum $name {
            $( $(#[$vm])* $v, )*
            /// A code this implementation does not know.
            Unknown($ty),
        }
        impl From<$ty> for $name {
            fn from(v: $ty) -> Self {
                match v { $( $val => $name::$v, )* other => $name::Unknown(other) }
            }
        }
        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                match v { $( $name::$v => $val, )* $name::Unknown(other) => other }
            }
        }
    };
}
