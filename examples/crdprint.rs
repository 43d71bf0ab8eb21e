fn main() {
    print!("{}", pio::crd::crd_yaml().unwrap());
}
